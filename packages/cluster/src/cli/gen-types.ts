/**
 * `tsray gen-types <module> [--out FILE] [--check] [--python PATH]`: TypeScript declarations of a
 * Python module's actor classes and functions, for `python.actor<T>()` / `python.remote<A, R>()`.
 *
 * The module is imported in-process through pythonia (one Python interpreter under this Node
 * process: a development-time tool, never on the cluster's paths) and described by
 * `tsray.describe` (signatures and type hints); `py-types.ts` writes the `.d.ts`. `--check` writes
 * nothing and fails when the file differs from what would be written (stale declarations in CI).
 * @module
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ClusterError } from '../errors.js';
import { CliUsageError } from './errors.js';
import type { CliIo } from './io.js';
import { renderDts, type PyModuleDescription } from './py-types.js';

/** Options of `tsray gen-types`. */
export interface GenTypesOptions {
  /** Dotted module name, importable from the cwd or PYTHONPATH. */
  module: string;
  /** Output file (default `<module>.d.ts` in the cwd). */
  out?: string;
  /** Compare instead of writing; exit 1 when stale. */
  check: boolean;
  /** Interpreter (default TSRAY_PYTHON, ./.venv/bin/python, python3). */
  python?: string;
}

const MODULE_NAME = /^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$/;

/** The interpreter gen-types uses: the option, TSRAY_PYTHON, ./.venv/bin/python, else python3. */
export function genTypesPython(given: string | undefined): string {
  if (given) return given;
  if (process.env['TSRAY_PYTHON']) return process.env['TSRAY_PYTHON'];
  const venv = resolve('.venv', 'bin', 'python');
  return existsSync(venv) ? venv : 'python3';
}

/** Describe `module` with pythonia (in-process Python); the interpreter is started and stopped here. */
async function describeWithPythonia(module: string, interpreter: string): Promise<PyModuleDescription> {
  // pythonia starts its interpreter when first imported, from PYTHON_BIN.
  process.env['PYTHON_BIN'] = interpreter;
  const { python } = await import('pythonia');
  try {
    const describe = await python('tsray.describe');
    const json = (await describe.describe_json(module)) as string;
    const parsed = JSON.parse(json) as PyModuleDescription | { error: string };
    if ('error' in parsed) throw new Error(parsed.error);
    return parsed;
  } catch (e) {
    const detail = (e as Error).message || 'the Python bridge failed (is the tsray package installed for this interpreter?)';
    throw new ClusterError(`tsray gen-types: could not describe the Python module ${module} with ${interpreter}: ${detail}`);
  } finally {
    python.exit();
  }
}

/** Run `tsray gen-types`; resolves to the exit code (0 written or current, 1 stale in --check mode). */
export async function cmdGenTypes(o: GenTypesOptions, io: CliIo): Promise<number> {
  if (!MODULE_NAME.test(o.module)) throw new CliUsageError(`tsray gen-types: expected a dotted Python module name, got ${JSON.stringify(o.module)}`);
  const out = resolve(o.out ?? `${o.module}.d.ts`);
  const description = await describeWithPythonia(o.module, genTypesPython(o.python));
  const text = renderDts(description, `tsray gen-types ${o.module}`);
  if (o.check) {
    const current = existsSync(out) ? readFileSync(out, 'utf8') : undefined;
    if (current === text) {
      io.out(`tsray gen-types: ${out} is up to date\n`);
      return 0;
    }
    io.err(`tsray gen-types: ${out} is ${current === undefined ? 'missing' : 'stale'}; run: tsray gen-types ${o.module}${o.out ? ` --out ${o.out}` : ''}\n`);
    return 1;
  }
  writeFileSync(out, text);
  io.out(
    `tsray gen-types: wrote ${out} (${description.classes.length} classes, ${description.functions.length} functions, ${description.interfaces.length} interfaces)\n`,
  );
  return 0;
}
