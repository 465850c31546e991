/**
 * The one schema of sampling parameters (zod), shared by the HTTP edge (request-schema.ts builds its
 * OpenAI fields from the same checks), the TS API (`SamplingParams` is derived from it and
 * `LLMEngine.stream` checks it) and the wire (`toWireParams`, the only mapping to the protobuf
 * message). Checks carry vLLM's ranges and messages, naming fields by vLLM's (snake_case) names.
 * @module
 */
import { z } from 'zod';
import type { tsray } from '@tsray/protocol';

/** Largest `n` an engine accepts (python/tsray/engine/backend.py `SamplingParams.MAX_N`). */
export const MAX_N = 64;
/** Largest `logprobs` / `top_logprobs` (vLLM's default `max_logprobs` is 20). */
export const MAX_LOGPROBS = 20;
const INT32 = 2 ** 31 - 1;

/** An integer in [min, max], with vLLM-style messages naming `field`. */
export const intField = (field: string, min: number, max = INT32) =>
  z
    .number({ error: `${field} must be an integer` })
    .int({ error: `${field} must be an integer` })
    .min(min, { error: (i) => `${field} must be at least ${min}, got ${String(i.input)}` })
    .max(max, { error: (i) => `${field} must be at most ${max}, got ${String(i.input)}` });

/** The check of each sampling parameter, built for the name a caller used (`top_p` at HTTP, …). */
export const samplingChecks = {
  temperature: (f: string) =>
    z
      .number({ error: `${f} must be a number` })
      .min(0, { error: (i) => `${f} must be in [0, 2], got ${String(i.input)}` })
      .max(2, { error: (i) => `${f} must be in [0, 2], got ${String(i.input)}` }),
  topP: (f: string) =>
    z
      .number({ error: `${f} must be a number` })
      .gt(0, { error: (i) => `${f} must be in (0, 1], got ${String(i.input)}` })
      .max(1, { error: (i) => `${f} must be in (0, 1], got ${String(i.input)}` }),
  /** -1 or 0: off. */
  topK: (f: string) => intField(f, -1),
  maxTokens: (f: string) => intField(f, 1),
  seed: (f: string) =>
    z
      .number({ error: `${f} must be an integer` })
      .int({ error: `${f} must be an integer` })
      .min(-Number.MAX_SAFE_INTEGER)
      .max(Number.MAX_SAFE_INTEGER, { error: `${f} must be an integer of at most ${Number.MAX_SAFE_INTEGER}` }),
  stop: (f: string) => z.array(z.string(), { error: `${f} must be a list of strings` }).max(64),
  n: (f: string) => intField(f, 1, MAX_N),
  logprobs: (f: string) => intField(f, 0, MAX_LOGPROBS),
  ignoreEos: (f: string) => z.boolean({ error: `${f} must be a boolean` }),
};

/** vLLM's (and the HTTP body's) name of each TS sampling parameter. */
export const SAMPLING_WIRE_NAMES = {
  temperature: 'temperature',
  topP: 'top_p',
  topK: 'top_k',
  maxTokens: 'max_tokens',
  stop: 'stop',
  seed: 'seed',
  n: 'n',
  logprobs: 'logprobs',
  ignoreEos: 'ignore_eos',
} as const satisfies Record<keyof typeof samplingChecks, string>;

const c = samplingChecks;
const w = SAMPLING_WIRE_NAMES;

/** Sampling parameters of the TS API (vLLM's names in camelCase); messages name vLLM's fields. */
export const samplingParamsSchema = z.object({
  temperature: c.temperature(w.temperature).optional(),
  topP: c.topP(w.topP).optional(),
  topK: c.topK(w.topK).optional(),
  /** Tokens to generate at most (default 16); `null`: up to the end of the context (vLLM's chat default). */
  maxTokens: c
    .maxTokens(w.maxTokens)
    .nullable()
    .optional()
    .meta({ description: 'tokens to generate at most (default 16); null: up to the end of the context' }),
  stop: c.stop(w.stop).optional(),
  seed: c.seed(w.seed).optional(),
  n: c.n(w.n).optional(),
  /** Log-probabilities of the `logprobs` most likely tokens at each step (0: the sampled token's only). */
  logprobs: c.logprobs(w.logprobs).optional(),
  ignoreEos: c.ignoreEos(w.ignoreEos).optional(),
});

/** Sampling parameters (vLLM's names in camelCase), derived from {@link samplingParamsSchema}. */
export type SamplingParams = z.input<typeof samplingParamsSchema>;

/** The first problem of `params`, as [message, vLLM field name]; undefined when they are valid. */
export function samplingProblem(params: unknown): [string, string | undefined] | undefined {
  const r = samplingParamsSchema.safeParse(params);
  if (r.success) return undefined;
  const issue = r.error.issues[0]!;
  const key = issue.path[0];
  const field = typeof key === 'string' && key in w ? w[key as keyof typeof w] : undefined;
  return [issue.message, field];
}

/** The protobuf message of checked sampling parameters (the only TS → wire mapping). */
export function toWireParams(p: SamplingParams = {}): tsray.v1.ISamplingParams {
  const m: tsray.v1.ISamplingParams = {};
  if (p.temperature !== undefined) m.temperature = p.temperature;
  if (p.topP !== undefined) m.topP = p.topP;
  if (p.topK !== undefined) m.topK = p.topK;
  // 0 on the wire: no limit but the context (python/tsray/engine/actor.py `_params_from_proto`).
  if (p.maxTokens === null) m.maxTokens = 0;
  else if (p.maxTokens !== undefined) m.maxTokens = p.maxTokens;
  if (p.stop !== undefined) m.stop = p.stop;
  if (p.seed !== undefined) m.seed = p.seed;
  if (p.n !== undefined) m.n = p.n;
  if (p.logprobs !== undefined) m.logprobs = p.logprobs;
  if (p.ignoreEos !== undefined) m.ignoreEos = p.ignoreEos;
  return m;
}
