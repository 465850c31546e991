/**
 * An OpenAI-compatible HTTP server in front of an engine or a data-parallel group, answering as
 * `vllm serve` does for the endpoints it offers: /v1/models, /v1/completions, /v1/chat/completions (SSE
 * streaming or not, `stream_options.include_usage`), /health, /version, /metrics (vLLM's metric names),
 * a bearer API key on /v1/*. Request bodies are checked by one schema (request-schema.ts) at the edge.
 *
 * Built on fastify (routing, body reading under the size limit, connection handling, errors before a
 * handler runs); the handlers take over the raw response (`reply.hijack()`), so SSE chunks go from the
 * engine's deltas straight to `res.write` and a full socket buffer stops the pulling until 'drain'.
 * @module
 */
import type { ServerResponse } from 'node:http';
import { once } from 'node:events';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { statsList, type EngineClient, type EngineTokenizer } from './engine-client.js';
import type { EngineStats, Prompt, SamplingParams, StreamDelta, TokenLogprob } from './engine.js';
import { chatLogprobs, codePointLength, completionLogprobs, type CompletionLogprobs } from './openai-logprobs.js';
import { EngineDeadError, EngineStartError, GenerateRequestError } from './errors.js';
import type { ZodType } from 'zod';
import {
  chatMessagesOf,
  chatRequest,
  completionRequest,
  detokenizeRequest,
  parseRequest,
  tokenizeRequest,
  promptsOf,
  RequestValidationError,
  samplingOf,
  type ChatRequest,
  type CompletionRequest,
} from './request-schema.js';
import { createServerMetrics, type ServerMetrics } from './server-metrics.js';

/**
 * What `serveOpenAI` serves: any {@link EngineClient} (an `LLMEngine`, a `DataParallel` or a
 * `MoEDataParallel` group). The server uses the interface only.
 */
export type ServeTarget = EngineClient;

/** Options of `serveOpenAI`. */
export interface OpenAIServerOptions {
  /** Port (0 = any free port). Default 8000. */
  port?: number;
  host?: string;
  /** The model name clients use. Default: the engine's model path. */
  modelName?: string;
  /** Largest accepted request body, bytes. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Bearer token required on /v1/* (as `vllm serve --api-key`). Default: none. */
  apiKey?: string;
}

/** What GET /version answers (vLLM answers its own version; this is the bridge's). */
export const SERVER_VERSION = '0.1.0';

/** A running server. */
export interface OpenAIServer {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The request body (read as text by the server's one content-type parser) as a JSON object; 400 otherwise. */
function jsonBody(req: FastifyRequest): Record<string, unknown> {
  let body: unknown;
  try {
    body = JSON.parse(typeof req.body === 'string' ? req.body : '');
  } catch (e) {
    throw new HttpError(400, `malformed JSON body: ${(e as Error).message}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'the request body must be a JSON object');
  return body as Record<string, unknown>;
}

/** What the route handlers share. */
interface ServeContext {
  target: ServeTarget;
  modelName: string;
  /** Largest accepted request body, bytes. */
  limit: number;
  metrics: ServerMetrics;
  apiKey: Buffer | undefined;
  /** The model's context length, once an engine has reported it. */
  maxModelLen: number;
}

/** Undefined when the target can take requests; else the HTTP error to answer with. */
function notReady({ target, modelName }: ServeContext): HttpError | undefined {
  const state = target.state;
  if (state === 'ready') return undefined;
  if (state === 'dead') return new HttpError(503, target.error ? publicMessage(target.error.message) : `the engine for ${modelName} is dead`);
  return new HttpError(503, `${modelName} is ${state === 'starting' ? 'loading' : 'restarting'}; retry shortly`, undefined, { 'retry-after': '1' });
}

/** Summed load of the target for the gauges (undefined while nothing can answer). */
async function loadOf(target: ServeTarget): Promise<{ running: number; waiting: number; kvCacheUsage: number } | undefined> {
  const ranks: EngineStats[] = target.state === 'ready' ? await statsList(target) : [];
  if (ranks.length === 0) return undefined;
  return {
    running: ranks.reduce((a, r) => a + r.running, 0),
    waiting: ranks.reduce((a, r) => a + r.waiting, 0),
    kvCacheUsage: ranks.reduce((a, r) => a + r.kvCacheUsage, 0) / ranks.length,
  };
}

/** The model's context length (0 while no engine has reported it); cached once known. */
async function maxModelLenOf(s: ServeContext): Promise<number> {
  if (s.maxModelLen > 0) return s.maxModelLen;
  if (notReady(s)) return 0; // stats() would wait for the engine; unknown for now
  try {
    const st = (await statsList(s.target)).find((r) => r.maxModelLen > 0);
    s.maxModelLen = st?.maxModelLen ?? 0;
  } catch {
    /* not ready: unknown for now */
  }
  return s.maxModelLen;
}

/** GET /health: 200 once the target can serve (a DataParallel group: at least one rank ready), else 503. */
function handleHealth(s: ServeContext, res: ServerResponse): void {
  const nr = notReady(s);
  if (nr) throw nr;
  res.writeHead(200).end();
}

/** GET /metrics: Prometheus text format. */
async function handleMetrics(s: ServeContext, res: ServerResponse): Promise<void> {
  const text = await s.metrics.registry.metrics();
  res.writeHead(200, { 'content-type': s.metrics.registry.contentType }).end(text);
}

/** GET /v1/models: the one model this server serves, with vLLM's fields (`root`, `max_model_len`). */
async function handleModels(s: ServeContext, res: ServerResponse): Promise<void> {
  const maxModelLen = await maxModelLenOf(s);
  json(res, 200, {
    object: 'list',
    data: [
      {
        id: s.modelName,
        object: 'model',
        created: 0,
        owned_by: 'vllm',
        root: s.target.model,
        parent: null,
        max_model_len: maxModelLen > 0 ? maxModelLen : null,
        permission: [],
      },
    ],
  });
}

/** One choice of a completion as its deltas arrive. */
interface ChoiceText {
  text: string;
  finish: string;
  completion: number;
  /** The chat role went out in this choice's first chunk (vLLM sends it once). */
  roleSent: boolean;
  /** The logprob entries so far (kept for a non-streamed answer; only when the request asked for them). */
  logprobs: TokenLogprob[] | undefined;
  /** Completions: where the next token's text starts in the choice's text (`text_offset`). */
  offset: number;
  /** Completions: where the generated text starts (after an echoed prompt). */
  offset0: number;
}

/** Collects a request's deltas into its choices, observes latency metrics, and writes SSE chunks. */
class CompletionCollector {
  readonly choices: ChoiceText[];
  private readonly promptCounts: number[];
  private readonly t0 = performance.now();
  private last = 0;

  constructor(
    private readonly s: ServeContext,
    private readonly res: ServerResponse,
    private readonly meta: { id: string; created: number; chat: boolean; sse: boolean; includeUsage: boolean; echo: string[] | undefined },
    private readonly n: number,
    prompts: number,
  ) {
    this.choices = Array.from({ length: n * prompts }, () => ({
      text: '',
      finish: '',
      completion: 0,
      roleSent: false,
      logprobs: undefined,
      offset: 0,
      offset0: 0,
    }));
    this.promptCounts = new Array<number>(prompts).fill(0);
  }

  private chunk(choices: unknown[], extra: Record<string, unknown> = {}): string {
    const { id, created, chat } = this.meta;
    return `data: ${JSON.stringify({ id, object: chat ? 'chat.completion.chunk' : 'text_completion', created, model: this.s.modelName, choices, ...extra })}\n\n`;
  }

  /** Take delta `d` of prompt `p`; returns false when the SSE socket's buffer is full (wait for 'drain'). */
  onDelta(p: number, d: StreamDelta): boolean {
    const now = performance.now();
    if (this.last === 0) this.s.metrics.firstToken((now - this.t0) / 1000);
    else this.s.metrics.interToken((now - this.last) / 1000);
    this.last = now;
    const index = p * this.n + d.index;
    const c = this.choices[index]!;
    const echo = !this.meta.chat && this.meta.echo && c.text === '' && c.completion === 0 ? this.meta.echo[p]! : '';
    if (echo) c.offset = c.offset0 = codePointLength(echo);
    c.text += echo + d.text;
    c.completion = d.completionTokens;
    this.promptCounts[p] = d.promptTokens;
    if (d.finishReason) c.finish = d.finishReason === 'abort' ? 'stop' : d.finishReason;
    if (!this.meta.sse) {
      if (d.logprobs) (c.logprobs ??= []).push(...d.logprobs);
      return true;
    }
    const finishReason = d.finishReason ? c.finish : null;
    let choice: Record<string, unknown>;
    if (this.meta.chat) {
      const logprobs = d.logprobs ? chatLogprobs(d.logprobs) : null;
      choice = { index, delta: c.roleSent ? { content: d.text } : { role: 'assistant', content: d.text }, logprobs, finish_reason: finishReason };
      c.roleSent = true;
    } else {
      let logprobs: CompletionLogprobs | null = null;
      if (d.logprobs) ({ logprobs, end: c.offset } = completionLogprobs(d.logprobs, c.offset));
      choice = { index, text: echo + d.text, logprobs, finish_reason: finishReason };
    }
    return this.res.write(this.chunk([choice]));
  }

  /** Count the tokens and answer: the usage chunk (if asked) and the SSE terminator, or the whole completion as JSON. */
  finish(): void {
    const { id, created, chat, sse } = this.meta;
    const completionTokens = this.choices.reduce((a, c) => a + c.completion, 0);
    const promptTokens = this.promptCounts.reduce((a, b) => a + b, 0);
    this.s.metrics.finished({
      seconds: (performance.now() - this.t0) / 1000,
      promptTokens,
      generationTokens: completionTokens,
      finishedReasons: this.choices.map((c) => c.finish || 'stop'),
    });
    const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
    if (sse) {
      // vLLM's last chunk with include_usage: no choices, the request's usage.
      if (this.meta.includeUsage) this.res.write(this.chunk([], { usage }));
      this.res.end('data: [DONE]\n\n');
      return;
    }
    json(this.res, 200, {
      id,
      object: chat ? 'chat.completion' : 'text_completion',
      created,
      model: this.s.modelName,
      choices: this.choices.map((c, index) =>
        chat
          ? { index, message: { role: 'assistant', content: c.text }, logprobs: c.logprobs ? chatLogprobs(c.logprobs) : null, finish_reason: c.finish }
          : { index, text: c.text, logprobs: c.logprobs ? completionLogprobs(c.logprobs, c.offset0).logprobs : null, finish_reason: c.finish },
      ),
      usage,
    });
  }
}

/** The validated body of a completion or chat request; 400 naming the field, 404 for another model. */
async function requestOf(s: ServeContext, req: FastifyRequest, chat: boolean): Promise<CompletionRequest | ChatRequest> {
  const body: CompletionRequest | ChatRequest = chat ? await bodyOf(s, req, chatRequest) : await bodyOf(s, req, completionRequest);
  const max = body.max_completion_tokens ?? body.max_tokens;
  const maxModelLen = await maxModelLenOf(s);
  if (max != null && maxModelLen > 0 && max >= maxModelLen) {
    throw new HttpError(
      400,
      `This model's maximum context length is ${maxModelLen} tokens. However, you requested ${max} tokens in the completion. Please reduce the length of the completion.`,
      body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens',
    );
  }
  return body;
}

/** POST /v1/completions and /v1/chat/completions (SSE when `stream` is true). */
async function handleCompletion(s: ServeContext, req: FastifyRequest, res: ServerResponse, chat: boolean, route: string): Promise<void> {
  const body = await requestOf(s, req, chat);
  const params: SamplingParams = samplingOf(body, chat);
  const prompts: Prompt[] = promptsOf(body, chat);
  // Not ready (loading, restarting, dead): 503, with Retry-After while it is coming up.
  const nr = notReady(s);
  if (nr) throw nr;
  const id = `${chat ? 'chatcmpl' : 'cmpl'}-${randomBytes(8).toString('hex')}`;
  const created = Math.floor(Date.now() / 1000);
  const ac = new AbortController();
  // A client that goes away aborts its request(s) in the engine.
  res.on('close', () => {
    if (!res.writableFinished) ac.abort();
  });
  const sse = body.stream === true;
  const echo = !chat && (body as CompletionRequest).echo === true ? prompts.map((p) => (typeof p === 'string' ? p : '')) : undefined;
  const meta = { id, created, chat, sse, includeUsage: body.stream_options?.include_usage === true, echo };
  const collector = new CompletionCollector(s, res, meta, params.n ?? 1, prompts.length);
  const its = prompts.map((p) => s.target.stream(p, params, { signal: ac.signal }));
  // The first delta (or error) of every prompt decides the status: errors before any output are HTTP errors.
  let firsts: IteratorResult<StreamDelta, void>[];
  try {
    firsts = await Promise.all(its.map((it) => it.next()));
  } catch (e) {
    ac.abort();
    throw mapError(e);
  }
  if (sse) res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  try {
    await Promise.all(its.map((it, p) => pump(collector, res, p, firsts[p]!, it, ac.signal)));
  } catch (e) {
    ac.abort();
    if (sse) {
      const he = mapError(e);
      res.write(`data: ${JSON.stringify(errorBody(he))}\n\n`);
      res.end('data: [DONE]\n\n');
      return;
    }
    throw mapError(e);
  }
  if (ac.signal.aborted) return; // the client went away: nothing to answer
  collector.finish();
  s.metrics.request(route, 'POST', 200);
}

/** Feed one prompt's deltas to the collector; a full socket buffer stops the pulling until 'drain'. */
async function pump(
  c: CompletionCollector,
  res: ServerResponse,
  p: number,
  first: IteratorResult<StreamDelta, void>,
  it: AsyncGenerator<StreamDelta, void, undefined>,
  signal: AbortSignal,
): Promise<void> {
  for (let r = first; !r.done; r = await it.next()) {
    if (!c.onDelta(p, r.value) && !signal.aborted) await Promise.race([once(res, 'drain'), once(res, 'close')]);
  }
}

/** The tokenizer to use now; 503 while nothing is ready. */
function tokenizerOf(s: ServeContext): EngineTokenizer {
  const nr = notReady(s);
  if (nr) throw nr;
  const t = s.target.tokenizer();
  if (!t) throw new HttpError(503, `${s.modelName} has no ready engine to tokenize with; retry shortly`, undefined, { 'retry-after': '1' });
  return t;
}

/** Parse a body with a schema; 400 naming the field, 404 for another model. */
async function bodyOf<T extends { model?: string | null | undefined }>(s: ServeContext, req: FastifyRequest, schema: ZodType<T>): Promise<T> {
  const raw = jsonBody(req);
  let body: T;
  try {
    body = parseRequest(schema, raw);
  } catch (e) {
    if (e instanceof RequestValidationError) throw new HttpError(400, e.message, e.param);
    throw e;
  }
  if (body.model != null && body.model !== s.modelName) throw new HttpError(404, `The model \`${body.model}\` does not exist.`, 'model');
  return body;
}

/** POST /tokenize (vLLM's): `{count, max_model_len, tokens}`. */
async function handleTokenize(s: ServeContext, req: FastifyRequest, res: ServerResponse): Promise<void> {
  const body = await bodyOf(s, req, tokenizeRequest);
  const tok = tokenizerOf(s);
  const tokens = await tok.tokenize(body.messages ? chatMessagesOf(body.messages) : body.prompt!, { addSpecialTokens: body.add_special_tokens ?? true });
  json(res, 200, { count: tokens.length, max_model_len: await maxModelLenOf(s), tokens, token_strs: null });
}

/** POST /detokenize (vLLM's): `{prompt}`. */
async function handleDetokenize(s: ServeContext, req: FastifyRequest, res: ServerResponse): Promise<void> {
  const body = await bodyOf(s, req, detokenizeRequest);
  json(res, 200, { prompt: await tokenizerOf(s).detokenize(body.tokens) });
}

/** The routes (also the bounded values of the metrics' route label). */
const ROUTES: Record<
  string,
  { method: string; auth: boolean; handle: (s: ServeContext, req: FastifyRequest, res: ServerResponse, route: string) => Promise<void> | void }
> = {
  '/health': { method: 'GET', auth: false, handle: (s, _req, res) => handleHealth(s, res) },
  '/metrics': { method: 'GET', auth: false, handle: (s, _req, res) => handleMetrics(s, res) },
  '/version': { method: 'GET', auth: false, handle: (_s, _req, res) => json(res, 200, { version: SERVER_VERSION }) },
  '/v1/models': { method: 'GET', auth: true, handle: (s, _req, res) => handleModels(s, res) },
  '/tokenize': { method: 'POST', auth: false, handle: (s, req, res) => handleTokenize(s, req, res) },
  '/detokenize': { method: 'POST', auth: false, handle: (s, req, res) => handleDetokenize(s, req, res) },
  '/v1/completions': { method: 'POST', auth: true, handle: (s, req, res, route) => handleCompletion(s, req, res, false, route) },
  '/v1/chat/completions': { method: 'POST', auth: true, handle: (s, req, res, route) => handleCompletion(s, req, res, true, route) },
};

/** Whether the request carries the server's API key (`Authorization: Bearer <key>`), compared in constant time. */
function authorized(s: ServeContext, req: FastifyRequest): boolean {
  if (!s.apiKey) return true;
  const h = req.headers.authorization ?? '';
  const given = Buffer.from(h.startsWith('Bearer ') ? h.slice(7) : '');
  return given.length === s.apiKey.length && timingSafeEqual(given, s.apiKey);
}

/** Run a known route's handler on the raw response (404/405/401 as vLLM; errors as vLLM's error body). */
async function dispatch(s: ServeContext, req: FastifyRequest, res: ServerResponse, route: string): Promise<void> {
  const r = ROUTES[route]!;
  try {
    if (r.auth && !authorized(s, req)) {
      s.metrics.request(route, req.method, 401);
      json(res, 401, { error: 'Unauthorized' });
      return;
    }
    if (req.method !== r.method) throw new HttpError(405, `Method Not Allowed: ${req.method} ${route}`);
    await r.handle(s, req, res, route);
    if (route !== '/v1/completions' && route !== '/v1/chat/completions') s.metrics.request(route, r.method, res.statusCode);
  } catch (e) {
    const he = e instanceof HttpError ? e : mapError(e);
    s.metrics.request(route, req.method, he.status);
    if (res.headersSent) {
      res.end();
      return;
    }
    json(res, he.status, errorBody(he), he.headers);
  }
}

/** Errors fastify raises before a handler runs (body over the limit, bad framing) as vLLM's error body. */
function fastifyErrorOf(e: FastifyError, limit: number): HttpError {
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new HttpError(413, `request body over ${limit} bytes`);
  const status = e.statusCode && e.statusCode >= 400 && e.statusCode < 500 ? e.statusCode : 500;
  return new HttpError(status, publicMessage(e.message));
}

/** The fastify app: every route of ROUTES on every method (405 from the handler), vLLM-shaped errors. */
function buildApp(s: ServeContext): FastifyInstance {
  const app = Fastify({ bodyLimit: s.limit, logger: false, exposeHeadRoutes: false, forceCloseConnections: true });
  // Bodies are read as text whatever the content type (vLLM's FastAPI parses JSON without the header).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  for (const route of Object.keys(ROUTES)) {
    app.route({
      method: ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'],
      url: route,
      handler: async (req, reply) => {
        // The handlers write the raw response themselves (SSE straight to the socket, 'drain' honoured).
        reply.hijack();
        await dispatch(s, req, reply.raw, route);
      },
    });
  }
  app.setNotFoundHandler((req, reply) => {
    const he = new HttpError(404, `Not Found: ${req.method} ${new URL(req.url, 'http://x').pathname}`);
    s.metrics.request('other', req.method, 404);
    void reply.code(404).send(errorBody(he));
  });
  app.setErrorHandler((e: FastifyError, req, reply) => {
    const he = fastifyErrorOf(e, s.limit);
    const route = req.routeOptions.url && Object.hasOwn(ROUTES, req.routeOptions.url) ? req.routeOptions.url : 'other';
    s.metrics.request(route, req.method, he.status);
    void reply.code(he.status).headers(he.headers).send(errorBody(he));
  });
  return app;
}

/**
 * Serve an engine (or a DataParallel group) with OpenAI's HTTP API, as `vllm serve` answers it. A
 * client that disconnects aborts its request in the engine.
 */
export async function serveOpenAI(target: ServeTarget, options: OpenAIServerOptions = {}): Promise<OpenAIServer> {
  const modelName = options.modelName ?? target.model;
  const s: ServeContext = {
    target,
    modelName,
    limit: options.maxBodyBytes ?? 1024 * 1024,
    metrics: createServerMetrics(modelName, () => loadOf(target)),
    apiKey: options.apiKey ? Buffer.from(options.apiKey) : undefined,
    maxModelLen: 0,
  };
  const app = buildApp(s);
  const host = options.host ?? '127.0.0.1';
  try {
    await app.listen({ port: options.port ?? 8000, host });
  } catch (e) {
    await app.close();
    throw (e as NodeJS.ErrnoException).code === 'EADDRINUSE' ? new Error(`serveOpenAI: port ${options.port} is already in use`) : e;
  }
  const port = (app.server.address() as { port: number }).port;
  return {
    port,
    url: `http://${host}:${port}`,
    close: async () => {
      app.server.closeAllConnections();
      await app.close();
    },
  };
}

/** vLLM's error type names by HTTP status. */
const ERROR_TYPES: Record<number, string> = {
  400: 'BadRequestError',
  404: 'NotFoundError',
  405: 'MethodNotAllowed',
  413: 'BadRequestError',
  500: 'InternalServerError',
  503: 'ServiceUnavailableError',
};

/** vLLM's error body: `{error: {message, type, param, code}}` with the HTTP status as `code`. */
function errorBody(he: HttpError): { error: { message: string; type: string; param: string | null; code: number } } {
  return { error: { message: he.message, type: ERROR_TYPES[he.status] ?? 'InternalServerError', param: he.param ?? null, code: he.status } };
}

/** Internal socket paths (ipc://…, *.sock) are not the client's business: they are cut from messages. */
function publicMessage(m: string): string {
  return m.replace(/(ipc|tcp):\/\/\S+/g, '<engine socket>').replace(/\/\S*\.sock\b/g, '<engine socket>');
}

function mapError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof GenerateRequestError) {
    if (e.code === 'invalid_params' || e.code === 'prompt_too_long')
      return new HttpError(400, e.message, e.field ?? (e.code === 'prompt_too_long' ? 'prompt' : undefined));
    if (e.code === 'not_ready') return new HttpError(503, publicMessage(e.message), undefined, { 'retry-after': '1' });
    return new HttpError(500, publicMessage(e.message));
  }
  if (e instanceof EngineDeadError) return new HttpError(503, publicMessage(e.message), undefined, { 'retry-after': '5' });
  if (e instanceof EngineStartError) return new HttpError(503, publicMessage(e.message));
  return new HttpError(500, publicMessage((e as Error).message ?? String(e)));
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}
