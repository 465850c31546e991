/** Builds for the runtime env tests (runtime-env's and core's): tiny wheels and npm tarballs in temp dirs (hermetic: no index is used). */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../', import.meta.url));
/** The project's Python (tools/setup-python.sh), else python3. */
export const PYTHON = existsSync(join(repo, '.venv/bin/python')) ? join(repo, '.venv/bin/python') : 'python3';

const WHEEL_SCRIPT = `
import base64, hashlib, sys, zipfile
out, name, version, body = sys.argv[1:5]
deps = sys.argv[5:]
dist = f"{name}-{version}.dist-info"
files = {
    f"{name}/__init__.py": body + "\\n",
    f"{dist}/METADATA": "Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\n%s" % (name, version, "".join("Requires-Dist: %s\\n" % d for d in deps)),
    f"{dist}/WHEEL": "Wheel-Version: 1.0\\nGenerator: tsray-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
}
record = []
path = f"{out}/{name}-{version}-py3-none-any.whl"
with zipfile.ZipFile(path, "w") as z:
    for p, text in files.items():
        data = text.encode()
        z.writestr(p, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{p},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    z.writestr(f"{dist}/RECORD", "\\n".join(record) + "\\n")
print(path)
`;

/** Build `<name>-<version>-py3-none-any.whl` into `dir`: `<name>/__init__.py` holds `body`. */
export function buildWheel(dir: string, name: string, version: string, body: string, deps: string[] = []): string {
  mkdirSync(dir, { recursive: true });
  return execFileSync(PYTHON, ['-c', WHEEL_SCRIPT, dir, name, version, body, ...deps], { encoding: 'utf8' }).trim();
}

/** `npm pack` a tiny ESM package into `dir`; returns the .tgz path. */
export function buildNpmTarball(dir: string, name: string, version: string, indexJs: string): string {
  const src = join(dir, `src-${name}`);
  mkdirSync(src, { recursive: true });
  writeFileSync(join(src, 'package.json'), JSON.stringify({ name, version, type: 'module', main: 'index.js', exports: './index.js' }));
  writeFileSync(join(src, 'index.js'), indexJs);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  const file = execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: src, encoding: 'utf8', env }).trim().split('\n').pop()!;
  return join(dir, file);
}

/** A fresh temp dir under the OS temp dir (the caller removes it). */
export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `tsray-rtenv-${prefix}-`));
}
