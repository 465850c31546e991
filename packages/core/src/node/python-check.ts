/**
 * Whether Python workers can start on this node: the interpreter exists, is Python >= 3.10 and
 * imports the tsray package. Run once per node (it spawns the interpreter).
 * @internal
 */
import { execFileSync } from 'node:child_process';

/** Why Python workers cannot start with interpreter `py` (undefined: they can). */
export function pythonProblemOf(py: string): string | undefined {
  try {
    const out = execFileSync(py, ['-c', 'import sys; import tsray.worker; print("%d.%d" % sys.version_info[:2])'], {
      encoding: 'utf8',
      timeout: 30_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
    const [maj, min] = out.split('.').map(Number);
    if (maj! > 3 || (maj === 3 && min! >= 10)) return undefined;
    return `Python ${out} at ${py} is too old: tsray needs Python >= 3.10 (pass init({ python }) or set TSRAY_PYTHON)`;
  } catch (e) {
    const err = e as { code?: string; stderr?: string; message: string };
    if (err.code === 'ENOENT') {
      return `no Python interpreter at "${py}": install Python >= 3.10 with the tsray package (pip install ./python) and pass init({ python: '/path/to/python' }) or set TSRAY_PYTHON`;
    }
    return `the Python interpreter "${py}" cannot import the tsray package (${(err.stderr ?? err.message).trim().split('\n').pop()}): pip install ./python into that environment, or point init({ python }) / TSRAY_PYTHON at one that has it`;
  }
}
