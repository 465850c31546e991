/**
 * The one schema of OpenAI request bodies at the HTTP edge (zod): every field checked with vLLM's limits
 * and messages before anything reaches the engine, so bad input is a 400 that names its `param`.
 * @module
 */
import { z } from 'zod';
import type { ChatMessage, Prompt } from './engine.js';
import { intField, MAX_LOGPROBS, MAX_N, samplingChecks, type SamplingParams } from './sampling-params.js';

export { MAX_LOGPROBS, MAX_N } from './sampling-params.js';

// The sampling fields come from the shared checks (sampling-params.ts), named as OpenAI/vLLM name them.
const c = samplingChecks;
const samplingFields = {
  model: z.string({ error: 'model must be a string' }).optional(),
  temperature: c.temperature('temperature').nullish(),
  top_p: c.topP('top_p').nullish(),
  top_k: c.topK('top_k').nullish(),
  max_tokens: c.maxTokens('max_tokens').nullish(),
  max_completion_tokens: c.maxTokens('max_completion_tokens').nullish(),
  n: c.n('n').nullish(),
  seed: c.seed('seed').nullish(),
  // A single stop string is accepted at the edge, as OpenAI's API does; the engine takes a list.
  stop: z.union([z.string(), c.stop('stop')], { error: 'stop must be a string or a list of strings' }).nullish(),
  stream: z.boolean({ error: 'stream must be a boolean' }).nullish(),
  stream_options: z
    .looseObject(
      { include_usage: z.boolean({ error: 'stream_options.include_usage must be a boolean' }).nullish() },
      { error: 'stream_options must be an object' },
    )
    .nullish(),
  ignore_eos: c.ignoreEos('ignore_eos').nullish(),
  user: z.string().nullish(),
};

const textPart = z.looseObject({ type: z.literal('text', { error: 'only text content parts are supported' }), text: z.string() });

/** A chat message: `content` is a string or a list of `{type: 'text', text}` parts (joined, as vLLM does). */
const message = z.looseObject({
  role: z.string({ error: 'messages[].role must be a string' }),
  content: z.union([z.string(), z.array(textPart)], { error: 'messages[].content must be a string or a list of text parts' }),
});

/** POST /v1/completions body. */
export const completionRequest = z
  .looseObject({
    ...samplingFields,
    prompt: z.union([z.string(), z.array(z.string()).min(1).max(MAX_N), z.array(z.number().int().min(0)).min(1)], {
      error: 'prompt must be a string, a list of strings or a list of token ids',
    }),
    echo: z.boolean({ error: 'echo must be a boolean' }).nullish(),
    logprobs: c.logprobs('logprobs').nullish(),
  })
  .superRefine(crossFieldChecks);

/** POST /v1/chat/completions body. */
export const chatRequest = z
  .looseObject({
    ...samplingFields,
    messages: z.array(message, { error: 'messages must be a list of {role, content}' }).min(1, { error: 'messages must not be empty' }),
    logprobs: z.boolean({ error: 'logprobs must be a boolean' }).nullish(),
    top_logprobs: intField('top_logprobs', 0, MAX_LOGPROBS).nullish(),
  })
  .superRefine(crossFieldChecks)
  .superRefine((b, ctx) => {
    // vLLM's check: top_logprobs alone would silently return nothing.
    if (b.top_logprobs != null && b.logprobs !== true)
      ctx.addIssue({ code: 'custom', path: ['top_logprobs'], message: 'when using `top_logprobs`, `logprobs` must be set to true.' });
  });

/** A validated completion or chat request body. */
export type CompletionRequest = z.infer<typeof completionRequest>;
/** A validated chat request body. */
export type ChatRequest = z.infer<typeof chatRequest>;

function crossFieldChecks(
  b: { stream?: boolean | null | undefined; stream_options?: unknown; n?: number | null | undefined; temperature?: number | null | undefined },
  ctx: z.RefinementCtx,
): void {
  if (b.stream_options != null && b.stream !== true)
    ctx.addIssue({ code: 'custom', path: ['stream_options'], message: 'Stream options can only be defined when `stream=True`.' });
  if ((b.n ?? 1) > 1 && b.temperature === 0) ctx.addIssue({ code: 'custom', path: ['n'], message: `n must be 1 when using greedy sampling, got ${b.n}` });
}

/** A request body that failed the schema: the first issue's message and its field path. */
export class RequestValidationError extends Error {
  override name = 'RequestValidationError';
  constructor(
    message: string,
    readonly param: string | undefined,
  ) {
    super(message);
  }
}

/** Parse `body` with `schema`; the first problem becomes a {@link RequestValidationError} naming the field. */
export function parseRequest<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const param =
    issue.path.length > 0 ? issue.path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('') : undefined;
  // Missing means absent from the body (zod's `input` is also undefined for some failed checks, e.g. a
  // non-integer seed, which must keep its own message).
  const missing = issue.code === 'invalid_type' && valueAt(body, issue.path) === undefined;
  throw new RequestValidationError(missing ? `${param} is required` : issue.message, param);
}

/** The value at `path` in `body` (undefined when absent). */
function valueAt(body: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = body;
  for (const k of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

/** The engine's sampling parameters of a validated body (`chat`: no max_tokens = the rest of the context, as vLLM). */
export function samplingOf(b: CompletionRequest | ChatRequest, chat: boolean): SamplingParams {
  const p: SamplingParams = {};
  if (b.temperature != null) p.temperature = b.temperature;
  if (b.top_p != null) p.topP = b.top_p;
  if (b.top_k != null) p.topK = b.top_k;
  const max = b.max_completion_tokens ?? b.max_tokens;
  if (max != null) p.maxTokens = max;
  else if (chat) p.maxTokens = null;
  if (b.seed != null) p.seed = b.seed;
  if (b.n != null) p.n = b.n;
  if (b.stop != null) p.stop = typeof b.stop === 'string' ? [b.stop] : b.stop;
  if (b.ignore_eos != null) p.ignoreEos = b.ignore_eos;
  // Completions: `logprobs` = how many top tokens per step; chat: `logprobs: true` and `top_logprobs`.
  if (chat) {
    const cb = b as ChatRequest;
    if (cb.logprobs === true) p.logprobs = cb.top_logprobs ?? 0;
  } else if ((b as CompletionRequest).logprobs != null) p.logprobs = (b as CompletionRequest).logprobs!;
  return p;
}

/** The prompts of a validated body: one per string of a completion's list, else one. */
export function promptsOf(b: CompletionRequest | ChatRequest, chat: boolean): Prompt[] {
  if (chat) {
    return [{ messages: chatMessagesOf((b as ChatRequest).messages) }];
  }
  const p = (b as CompletionRequest).prompt;
  if (typeof p === 'string') return [p];
  if (p.every((x): x is string => typeof x === 'string')) return p;
  return [p as number[]];
}

/** POST /tokenize body (vLLM's): a `prompt` string or chat `messages`. */
export const tokenizeRequest = z
  .looseObject({
    model: z.string({ error: 'model must be a string' }).optional(),
    prompt: z.string({ error: 'prompt must be a string' }).optional(),
    messages: z.array(message, { error: 'messages must be a list of {role, content}' }).min(1, { error: 'messages must not be empty' }).optional(),
    add_special_tokens: z.boolean({ error: 'add_special_tokens must be a boolean' }).nullish(),
  })
  .superRefine((b, ctx) => {
    if ((b.prompt === undefined) === (b.messages === undefined)) ctx.addIssue({ code: 'custom', path: ['prompt'], message: 'give either prompt or messages' });
  });

/** POST /detokenize body (vLLM's): token ids. */
export const detokenizeRequest = z.looseObject({
  model: z.string({ error: 'model must be a string' }).optional(),
  tokens: z.array(z.number().int().min(0), { error: 'tokens must be a list of token ids' }),
});

/** Chat messages of a validated body with text parts joined (as the engine takes them). */
export function chatMessagesOf(messages: { role: string; content: string | { text: string }[] }[]): ChatMessage[] {
  return messages.map((m) => ({ role: m.role, content: typeof m.content === 'string' ? m.content : m.content.map((part) => part.text).join('\n') }));
}
