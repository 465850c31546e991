// The shared test helper (test-utils/until.ts at the repository root), under the path this package's specs import.
export { type UntilOptions, until } from '../../../../test-utils/until.js';
