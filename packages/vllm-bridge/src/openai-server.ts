/**
 * An OpenAI-compatible HTTP server in front of an engine or a data-parallel group:
 * /v1/models, /v1/completions, /v1/chat/completions (SSE streaming or not), /health, /metrics.
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { DataParallel } from './data-parallel.js';
import type { EngineState, EngineStats, Prompt, SamplingParams, StreamDelta } from './engine.js';
import { EngineDeadError, EngineStartError, GenerateRequestError } from './errors.js';

/**
 * What `serveOpenAI` serves: an `LLMEngine`, a `MoEDataParallel` group (anything with this
 * shape), or a `DataParallel` group.
 */
export type ServeTarget =
  | DataParallel
  | {
      readonly model: string;
      readonly state: EngineState;
      readonly error: Error | undefined;
      stats(): Promise<EngineStats>;
      stream(prompt: Prompt, params?: SamplingParams, options?: { signal?: AbortSignal }): AsyncGenerator<StreamDelta, void, undefined>;
    };

/** Options of `serveOpenAI`. */
export interface OpenAIServerOptions {
  /** Port (0 = any free port). Default 8000. */
  port?: number;
  host?: string;
  /** The model name clients use. Default: the engine's model path. */
  modelName?: string;
  /** Largest accepted request body, bytes. Default 1 MiB. */
  maxBodyBytes?: number;
}

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

const NUM = (v: unknown, field: string, int = false): number | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || (int && !Number.isInteger(v)))
    throw new HttpError(400, `${field} must be a${int ? 'n integer' : ' number'}`, field);
  // The wire carries int32 (seed: int64); a larger value would wrap instead of being refused.
  const max = field === 'seed' ? Number.MAX_SAFE_INTEGER : 2 ** 31 - 1;
  if (int && Math.abs(v) > max) throw new HttpError(400, `${field} must be an integer of at most ${max}, got ${v}`, field);
  return v;
};

function samplingFromBody(b: Record<string, unknown>): SamplingParams {
  const p: SamplingParams = {};
  const set = <K extends keyof SamplingParams>(k: K, v: SamplingParams[K] | undefined) => {
    if (v !== undefined) p[k] = v;
  };
  set('temperature', NUM(b['temperature'], 'temperature'));
  set('topP', NUM(b['top_p'], 'top_p'));
  set('topK', NUM(b['top_k'], 'top_k', true));
  set('maxTokens', NUM(b['max_tokens'] ?? b['max_completion_tokens'], 'max_tokens', true));
  set('seed', NUM(b['seed'], 'seed', true));
  set('n', NUM(b['n'], 'n', true));
  const stop = b['stop'];
  if (stop !== undefined && stop !== null) {
    if (typeof stop === 'string') p.stop = [stop];
    else if (Array.isArray(stop) && stop.every((s) => typeof s === 'string')) p.stop = stop as string[];
    else throw new HttpError(400, 'stop must be a string or a list of strings', 'stop');
  }
  return p;
}

async function readJson(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw new HttpError(413, `request body over ${limit} bytes`);
    chunks.push(c as Buffer);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    throw new HttpError(400, `malformed JSON body: ${(e as Error).message}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'the request body must be a JSON object');
  return body as Record<string, unknown>;
}

/** Prometheus metrics of one server. */
interface ServerMetrics {
  registry: Registry;
  requests: Counter;
  promptTokens: Counter;
  genTokens: Counter;
  ttft: Histogram;
  itl: Histogram;
}

/** What the route handlers share. */
interface ServeContext {
  target: ServeTarget;
  modelName: string;
  /** Largest accepted request body, bytes. */
  limit: number;
  metrics: ServerMetrics;
}

/** Undefined when the target can take requests; else the HTTP error to answer with. */
function notReady({ target, modelName }: ServeContext): HttpError | undefined {
  if (target instanceof DataParallel) {
    const states = target.states;
    if (states.includes('ready')) return undefined;
    if (states.every((st) => st === 'dead')) {
      const err = Array.from({ length: target.size }, (_, i) => target.rank(i).error).find((e) => e !== undefined);
      return new HttpError(503, `no rank of ${modelName} can serve: ${err ? err.message : 'every rank is dead'}`);
    }
    return new HttpError(503, `${modelName} is not ready yet (ranks: ${states.join(', ')}); retry shortly`, undefined, { 'retry-after': '1' });
  }
  if (target.state === 'ready') return undefined;
  if (target.state === 'dead') return new HttpError(503, target.error?.message ?? `the engine for ${modelName} is dead`);
  return new HttpError(503, `${modelName} is ${target.state === 'starting' ? 'loading' : 'restarting'}; retry shortly`, undefined, { 'retry-after': '1' });
}

function createMetrics(target: ServeTarget): ServerMetrics {
  const registry = new Registry();
  const requests = new Counter({
    name: 'tsray_requests_total',
    help: 'requests by endpoint and status',
    labelNames: ['endpoint', 'status'],
    registers: [registry],
  });
  const promptTokens = new Counter({ name: 'tsray_prompt_tokens_total', help: 'prompt tokens', registers: [registry] });
  const genTokens = new Counter({ name: 'tsray_generation_tokens_total', help: 'generated tokens', registers: [registry] });
  const ttft = new Histogram({
    name: 'tsray_time_to_first_token_seconds',
    help: 'time to first token',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const itl = new Histogram({
    name: 'tsray_inter_token_latency_seconds',
    help: 'time between streamed deltas',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  new Gauge({
    name: 'tsray_queue_depth',
    help: 'waiting and running requests per rank',
    labelNames: ['rank', 'state'],
    registers: [registry],
    async collect() {
      let ranks: { rank: number; waiting: number; running: number }[] = [];
      if (target instanceof DataParallel) ranks = await target.stats();
      else if (target.state === 'ready') ranks = [{ ...(await target.stats().catch(() => ({ waiting: 0, running: 0 }))), rank: 0 }];
      for (const r of ranks) {
        this.set({ rank: String(r.rank), state: 'waiting' }, r.waiting);
        this.set({ rank: String(r.rank), state: 'running' }, r.running);
      }
    },
  });
  return { registry, requests, promptTokens, genTokens, ttft, itl };
}

/** GET /health: 200 once the target can serve (a DataParallel group: at least one rank ready), else 503. */
function handleHealth(s: ServeContext, res: ServerResponse): void {
  const nr = notReady(s);
  if (nr) throw nr;
  res.writeHead(200).end();
}

/** GET /metrics: Prometheus text format. */
async function handleMetrics(s: ServeContext, res: ServerResponse): Promise<void> {
  res.writeHead(200, { 'content-type': s.metrics.registry.contentType }).end(await s.metrics.registry.metrics());
}

/** GET /v1/models: the one model this server serves. */
function handleModels(s: ServeContext, res: ServerResponse): void {
  json(res, 200, { object: 'list', data: [{ id: s.modelName, object: 'model', created: 0, owned_by: 'tsray' }] });
}

/** The prompt of a completion (`prompt`) or chat completion (`messages`) request; 400 when malformed. */
function promptFromBody(body: Record<string, unknown>, chat: boolean): Prompt {
  if (chat) {
    const msgs = body['messages'];
    if (!Array.isArray(msgs) || msgs.length === 0 || !msgs.every((m) => typeof m?.role === 'string' && typeof m?.content === 'string')) {
      throw new HttpError(400, 'messages must be a non-empty list of {role, content} strings', 'messages');
    }
    return { messages: msgs as { role: string; content: string }[] };
  }
  const p = body['prompt'];
  if (typeof p !== 'string' && !(Array.isArray(p) && p.every((x) => Number.isInteger(x))))
    throw new HttpError(400, 'prompt must be a string or a list of token ids', 'prompt');
  return p as Prompt;
}

/** One choice of a completion as its deltas arrive. */
interface ChoiceText {
  text: string;
  finish: string;
  completion: number;
}

/** Collects a request's deltas into its choices, observes latency metrics, and writes SSE chunks. */
class CompletionCollector {
  readonly choices: ChoiceText[];
  promptCount = 0;
  private readonly t0 = performance.now();
  private last = 0;

  constructor(
    private readonly s: ServeContext,
    private readonly res: ServerResponse,
    private readonly meta: { id: string; created: number; chat: boolean; sse: boolean },
    n: number,
  ) {
    this.choices = Array.from({ length: n }, () => ({ text: '', finish: '' as string, completion: 0 }));
  }

  onDelta(d: StreamDelta): void {
    const now = performance.now();
    if (this.last === 0) this.s.metrics.ttft.observe((now - this.t0) / 1000);
    else this.s.metrics.itl.observe((now - this.last) / 1000);
    this.last = now;
    const c = this.choices[d.index]!;
    c.text += d.text;
    c.completion = d.completionTokens;
    this.promptCount = d.promptTokens;
    if (d.finishReason) c.finish = d.finishReason === 'abort' ? 'stop' : d.finishReason;
    if (!this.meta.sse) return;
    const { id, created, chat } = this.meta;
    const choice = chat
      ? { index: d.index, delta: { role: 'assistant', content: d.text }, finish_reason: d.finishReason ? c.finish : null }
      : { index: d.index, text: d.text, finish_reason: d.finishReason ? c.finish : null, logprobs: null };
    this.res.write(
      `data: ${JSON.stringify({ id, object: chat ? 'chat.completion.chunk' : 'text_completion', created, model: this.s.modelName, choices: [choice] })}\n\n`,
    );
  }

  /** Count the tokens and answer: the SSE terminator, or the whole completion as JSON. */
  finish(): void {
    const { id, created, chat, sse } = this.meta;
    const completionTokens = this.choices.reduce((a, c) => a + c.completion, 0);
    this.s.metrics.promptTokens.inc(this.promptCount);
    this.s.metrics.genTokens.inc(completionTokens);
    const usage = { prompt_tokens: this.promptCount, completion_tokens: completionTokens, total_tokens: this.promptCount + completionTokens };
    if (sse) {
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
          ? { index, message: { role: 'assistant', content: c.text }, finish_reason: c.finish }
          : { index, text: c.text, finish_reason: c.finish, logprobs: null },
      ),
      usage,
    });
  }
}

/** POST /v1/completions and /v1/chat/completions (SSE when `stream` is true). */
async function handleCompletion(s: ServeContext, req: IncomingMessage, res: ServerResponse, chat: boolean, endpoint: string): Promise<void> {
  const body = await readJson(req, s.limit);
  if (body['model'] !== undefined && body['model'] !== s.modelName)
    throw new HttpError(404, `model "${String(body['model'])}" does not exist (this server serves "${s.modelName}")`, 'model');
  const params = samplingFromBody(body);
  const prompt = promptFromBody(body, chat);
  // Not ready (loading, restarting, dead): 503, with Retry-After while it is coming up.
  const nr = notReady(s);
  if (nr) throw nr;
  const id = `${chat ? 'chatcmpl' : 'cmpl'}-${randomBytes(8).toString('hex')}`;
  const created = Math.floor(Date.now() / 1000);
  const ac = new AbortController();
  // A client that goes away aborts its request in the engine.
  res.on('close', () => {
    if (!res.writableFinished) ac.abort();
  });
  const sse = body['stream'] === true;
  const collector = new CompletionCollector(s, res, { id, created, chat, sse }, params.n ?? 1);
  const it = s.target.stream(prompt, params, { signal: ac.signal });
  // The first delta (or error) decides the status: errors before any output are HTTP errors.
  let firstDelta: IteratorResult<StreamDelta, void>;
  try {
    firstDelta = await it.next();
  } catch (e) {
    throw mapError(e);
  }
  if (sse) res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  try {
    if (!firstDelta.done) collector.onDelta(firstDelta.value);
    for (;;) {
      const r = await it.next();
      if (r.done) break;
      collector.onDelta(r.value);
    }
  } catch (e) {
    if (sse) {
      res.write(`data: ${JSON.stringify({ error: { message: (e as Error).message, type: 'engine_error' } })}\n\n`);
      res.end('data: [DONE]\n\n');
      return;
    }
    throw mapError(e);
  }
  collector.finish();
  s.metrics.requests.inc({ endpoint, status: '200' });
}

/** Route a request to its endpoint's handler (404 for any other). */
async function route(s: ServeContext, req: IncomingMessage, res: ServerResponse, endpoint: string): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://x');
  if (req.method === 'GET' && url.pathname === '/health') return handleHealth(s, res);
  if (req.method === 'GET' && url.pathname === '/metrics') return handleMetrics(s, res);
  if (req.method === 'GET' && url.pathname === '/v1/models') return handleModels(s, res);
  const chat = url.pathname === '/v1/chat/completions';
  if (req.method !== 'POST' || (!chat && url.pathname !== '/v1/completions')) throw new HttpError(404, `no route ${req.method} ${url.pathname}`);
  return handleCompletion(s, req, res, chat, endpoint);
}

/**
 * Serve an engine (or a DataParallel group) with OpenAI's HTTP API. A client that disconnects
 * aborts its request in the engine.
 */
export async function serveOpenAI(target: ServeTarget, options: OpenAIServerOptions = {}): Promise<OpenAIServer> {
  const s: ServeContext = { target, modelName: options.modelName ?? target.model, limit: options.maxBodyBytes ?? 1024 * 1024, metrics: createMetrics(target) };
  const server: Server = createServer((req, res) => {
    const endpoint = (req.url ?? '/').split('?')[0]!;
    route(s, req, res, endpoint).catch((e: unknown) => {
      const he = e instanceof HttpError ? e : mapError(e);
      s.metrics.requests.inc({ endpoint, status: String(he.status) });
      if (res.headersSent) {
        res.end();
        return;
      }
      json(
        res,
        he.status,
        { error: { message: he.message, type: he.status >= 500 ? 'server_error' : 'invalid_request_error', param: he.param ?? null, code: null } },
        he.headers,
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'EADDRINUSE' ? new Error(`serveOpenAI: port ${options.port} is already in use`) : e));
    server.listen(options.port ?? 8000, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

function mapError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof GenerateRequestError) {
    if (e.code === 'invalid_params' || e.code === 'prompt_too_long')
      return new HttpError(400, e.message, e.field ?? (e.code === 'prompt_too_long' ? 'prompt' : undefined));
    if (e.code === 'not_ready') return new HttpError(503, e.message, undefined, { 'retry-after': '1' });
    return new HttpError(500, e.message);
  }
  if (e instanceof EngineDeadError) return new HttpError(503, e.message, undefined, { 'retry-after': '5' });
  if (e instanceof EngineStartError) return new HttpError(503, e.message);
  return new HttpError(500, (e as Error).message ?? String(e));
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}
