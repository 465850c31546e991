/**
 * The tiny local model (random weights, offline tokenizer) that demos and tests load: built once per
 * machine by `python -m tsray.engine.tiny_model`-equivalent code (tools/build-tiny-model.py).
 * @module
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { config } from '@tsray/core/internal';

/**
 * Path of the tiny Llama-family model folder, building it first if needed (a few seconds; needs
 * torch and transformers in `python`'s environment).
 * @param python interpreter with the tsray package and python/requirements-engine.txt installed.
 */
export function ensureTinyModel(python: string, outDir = join(config().modelCache ?? join(homedir(), '.cache', 'tsray', 'models'), 'tiny-llama')): string {
  if (!existsSync(join(outDir, '.complete'))) {
    execFileSync(python, ['-c', `import sys; from tsray.engine.tiny_model import build_tiny_model; build_tiny_model(sys.argv[1])`, outDir], {
      stdio: ['ignore', 'inherit', 'inherit'],
      timeout: 300_000,
    });
  }
  return outDir;
}
