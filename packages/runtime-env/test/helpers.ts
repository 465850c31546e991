// The runtime env test builds (test-utils/runtime-env-builds.ts at the repository root, shared with core's specs).
export { buildNpmTarball, buildWheel, PYTHON, tempDir } from '../../../test-utils/runtime-env-builds.js';
