// Process and temp-dir helpers shared by the core specs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export { alive } from '../../../../test-utils/processes.js';

/** A fresh directory under the test's TMPDIR, and the function that removes it. */
export function tempDir(prefix = 'tsray-core-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}
