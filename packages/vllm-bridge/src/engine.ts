/**
 * LLMEngine: one LLM engine (vLLM or transformers) in a GPU-pinned Python worker, driven over a
 * direct ZeroMQ data plane with protobuf messages.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import * as zmq from 'zeromq';
import { ActorDiedError, get, getActor, kill, python, TaskError, type ActorHandle, type ActorOptions, type SchedulingStrategy } from '@tsray/core';
import { decodeMessage, encodeMessage, type tsray, type EnvelopeBody } from '@tsray/protocol';
import type { EngineClient, EngineTokenizer } from './engine-client.js';
import { samplingProblem, toWireParams, type SamplingParams } from './sampling-params.js';
import { EngineDeadError, EngineStartError, GenerateAbortedError, GenerateRequestError } from './errors.js';

export type { SamplingParams } from './sampling-params.js';

/** One chat message (the engine applies the model's chat template). */
export interface ChatMessage {
  role: string;
  content: string;
}

/** What to generate from: text, token ids, or chat messages. */
export type Prompt = string | number[] | { messages: ChatMessage[] };

/** One of the most likely tokens at a generation step. */
export interface TopLogprob {
  tokenId: number;
  /** The token's text decoded alone (vLLM's `decoded_token`). */
  token: string;
  /** Natural-log probability (≤ 0; -9999 for a token sampling ruled out, as vLLM/OpenAI clamp -inf). */
  logprob: number;
}

/** The log-probability of one generated token, and the step's most likely tokens (when `logprobs` was asked for). */
export interface TokenLogprob extends TopLogprob {
  /** The `logprobs` (sampling parameter) most likely tokens of the step, most likely first. */
  top: TopLogprob[];
}

/** A streamed piece of one completion. */
export interface StreamDelta {
  requestId: string;
  /** Which of the `n` completions. */
  index: number;
  text: string;
  tokenIds: number[];
  /** Set on the last delta of a completion: 'stop' | 'length' | 'abort'. */
  finishReason: string | undefined;
  promptTokens: number;
  completionTokens: number;
  /** One per entry of `tokenIds` when the request set `logprobs` (sampling parameter); else absent. */
  logprobs?: TokenLogprob[];
}

/** A finished completion. */
export interface Completion {
  text: string;
  tokenIds: number[];
  finishReason: string;
  /** One per entry of `tokenIds` when the request set `logprobs` (sampling parameter); else absent. */
  logprobs?: TokenLogprob[];
  usage: { promptTokens: number; completionTokens: number };
  /** The other completions when n > 1 (index 1..n-1). */
  alternatives?: Completion[];
}

/** Where and how an engine runs (`engine.info()`). */
export interface EngineInfo {
  backend: string;
  max_model_len: number;
  model: string;
  pid: number;
  cuda_visible_devices: string | null;
  /** GPUs the engine shards its model over (vLLM's tensor-parallel size; 1 for transformers). */
  tensor_parallel_size: number;
  /** The GPU ids the engine's process sees (its `CUDA_VISIBLE_DEVICES`). */
  gpu_ids: string[];
}

/** Load of an engine. */
export interface EngineStats {
  waiting: number;
  running: number;
  kvCacheUsage: number;
  model: string;
  maxModelLen: number;
  backend: string;
}

/** Options of `LLMEngine.deploy`. */
export interface DeployOptions {
  /** Local model folder. */
  model: string;
  /** GPUs of the engine (tensor parallel size for vLLM); fractions share a GPU. Default 0 (CPU). */
  numGpus?: number;
  /** CPUs held by the engine's process. Default: as Ray's actors (1 to schedule, 0 held). */
  numCpus?: number;
  /** Backend: 'vllm' where a GPU and vLLM are present, 'transformers' otherwise ('auto'). */
  backend?: 'auto' | 'vllm' | 'transformers' | 'scripted';
  /** Engine arguments of the backend (vLLM's AsyncEngineArgs fields, snake_case). */
  engineArgs?: Record<string, unknown>;
  /** Register the engine under a name (find it with `LLMEngine.connect`). */
  name?: string;
  namespace?: string;
  /** Restart the engine process this many times if it dies (-1 = forever). Default 0. */
  maxRestarts?: number;
  /** Where to run it (e.g. a placement-group bundle). */
  schedulingStrategy?: SchedulingStrategy;
  /** Bind the data plane on TCP (for callers on other nodes) instead of a local ipc socket; it is then a CURVE server whose key only the engine actor hands out (docs/security.md). */
  bind?: 'ipc' | 'tcp';
  /**
   * Wait until the model is loaded before `deploy` returns (default true). With false, `deploy`
   * returns at once with `state` 'starting'; `ready()` settles when the load does, and requests
   * sent meanwhile wait for it.
   */
  wait?: boolean;
}

/**
 * Life-cycle state of an engine (or a DP rank): 'starting' (model loading), 'ready' (serving),
 * 'restarting' (its process died and the actor is being restarted per `maxRestarts`), 'dead'
 * (failed to start, died with no restart left, or shut down).
 */
export type EngineState = 'starting' | 'ready' | 'restarting' | 'dead';

interface EngineActorApi {
  address(): string;
  /** The CURVE public key of a tcp data plane ('' for ipc or with CURVE off). */
  server_key(): string;
  stats(): { waiting: number; running: number; kv_cache_usage: number };
  info(): EngineInfo;
  tokenize(prompt: string | ChatMessage[], addSpecialTokens: boolean): number[];
  detokenize(tokenIds: number[]): string;
  shutdown(): boolean;
}

/** Actor options of an engine process (resources, restarts, name, placement). @internal */
export function engineActorOptions(opts: DeployOptions): ActorOptions {
  const numGpus = opts.numGpus ?? 0;
  return {
    // Ray's actor default when left out: 1 CPU to schedule, none held while it runs.
    ...(opts.numCpus !== undefined ? { numCpus: opts.numCpus } : {}),
    numGpus,
    maxRestarts: opts.maxRestarts ?? 0,
    // address()/stats()/info() are idempotent: calls caught by a crash run again after the restart.
    maxTaskRetries: opts.maxRestarts ? -1 : 0,
    ...(opts.name ? { name: opts.name } : {}),
    ...(opts.namespace ? { namespace: opts.namespace } : {}),
    ...(opts.schedulingStrategy ? { schedulingStrategy: opts.schedulingStrategy } : {}),
    // `listActors()` / `tsray list actors` show it next to the GPU ids the node gives the actor.
    stateInfo: { tensorParallelSize: tensorParallelSizeOf(opts) },
  };
}

/**
 * The engine's tensor-parallel size as `engine.info()` reports it: `engineArgs.tensor_parallel_size`,
 * else vLLM shards over the engine's GPUs; the transformers backend does not shard (1). With backend
 * 'auto' this assumes vLLM where GPUs are asked for (the one case `info()` can differ from: 'auto' on
 * GPUs without vLLM installed).
 * @internal
 */
export function tensorParallelSizeOf(opts: DeployOptions): number {
  if (opts.backend === 'transformers') return 1;
  const tp = Number(opts.engineArgs?.['tensor_parallel_size']);
  if (Number.isInteger(tp) && tp >= 1) return tp;
  return Math.max(1, Math.ceil(opts.numGpus ?? 0));
}

/** The engine actor's constructor argument (tsray.engine.actor:EngineActor). @internal */
export function engineConfig(opts: DeployOptions): Record<string, unknown> {
  const numGpus = opts.numGpus ?? 0;
  return {
    model: opts.model,
    backend: opts.backend ?? 'auto',
    engine_args: opts.engineArgs ?? {},
    num_gpus: numGpus >= 1 ? Math.ceil(numGpus) : numGpus > 0 ? 1 : 0,
    gpu_fraction: numGpus > 0 && numGpus < 1 ? numGpus : 1,
    bind: opts.bind ?? 'ipc',
  };
}

const EngineActor = (opts: DeployOptions) => python.actor<EngineActorApi>('tsray.engine.actor:EngineActor', engineActorOptions(opts));

/** A throwaway CURVE keypair for one connection to an engine (the engine authenticates by its own key). */
function clientKeyPair(): { curvePublicKey: string; curveSecretKey: string } {
  const k = zmq.curveKeyPair();
  return { curvePublicKey: k.publicKey, curveSecretKey: k.secretKey };
}

interface Pending {
  deltas: StreamDelta[];
  wake: (() => void) | undefined;
  done: boolean;
  error: Error | undefined;
  /** Completions still running (n). */
  open: number;
}

/**
 * A handle to one engine. Create with `LLMEngine.deploy` (starts it) or `LLMEngine.connect` (finds a
 * named one). Works from any driver, task or actor.
 */
export class LLMEngine implements EngineClient {
  private socket: zmq.Dealer | undefined;
  private address: string | undefined;
  private connecting: Promise<void> | undefined;
  private readonly pending = new Map<string, Pending>();
  private readonly statsWaiters = new Map<number, (s: EngineStats) => void>();
  private seq = 0;
  private readonly prefix = randomBytes(4).toString('hex');
  private closed = false;
  private sendChain: Promise<void> = Promise.resolve();
  private statsRejects = new Map<number, (e: Error) => void>();
  private currentState: EngineState = 'starting';
  private lastError: Error | undefined;
  private readonly listeners = new Set<(state: EngineState) => void>();
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  private constructor(
    /** The engine's actor (its process). */
    readonly actor: ActorHandle<EngineActorApi>,
    readonly model: string,
    /** The actor's restart budget when known (deploy); undefined for `connect`ed handles. */
    private readonly maxRestarts: number | undefined,
  ) {}

  /**
   * A handle on an engine actor started elsewhere in this package (the MoE group's head).
   * @internal
   */
  static fromActor(actor: ActorHandle<unknown>, model: string, maxRestarts = 0): LLMEngine {
    const engine = new LLMEngine(actor as ActorHandle<EngineActorApi>, model, maxRestarts);
    engine.connect().catch(() => undefined);
    return engine;
  }

  /** Where the engine is in its life cycle (see {@link EngineState}). */
  get state(): EngineState {
    return this.currentState;
  }

  /** Why the engine is dead (EngineStartError or EngineDeadError), once it is. */
  get error(): Error | undefined {
    return this.currentState === 'dead' ? this.lastError : undefined;
  }

  /** Call `listener` on every state change; returns the unsubscribe function. */
  onState(listener: (state: EngineState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Settles when the engine is ready (resolves) or dead (rejects with EngineStartError /
   * EngineDeadError). A 'restarting' engine is waited for.
   */
  ready(): Promise<void> {
    if (this.currentState === 'ready') return Promise.resolve();
    if (this.currentState === 'dead') return Promise.reject(this.lastError ?? new EngineDeadError(`the engine for ${this.model} is dead`));
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  private setState(state: EngineState, error?: Error): void {
    if (error) this.lastError = error;
    if (state === this.currentState) return;
    this.currentState = state;
    if (state === 'ready' || state === 'dead') {
      const waiters = this.readyWaiters;
      this.readyWaiters = [];
      for (const w of waiters) {
        if (state === 'ready') w.resolve();
        else w.reject(this.lastError ?? new EngineDeadError(`the engine for ${this.model} is dead`));
      }
    }
    for (const l of [...this.listeners]) l(state);
  }

  /** Start an engine in its own Python worker (GPU-pinned when numGpus > 0) and wait until it is ready. */
  static async deploy(opts: DeployOptions): Promise<LLMEngine> {
    const handle = EngineActor(opts).remote(engineConfig(opts));
    const engine = new LLMEngine(handle, opts.model, opts.maxRestarts ?? 0);
    if (opts.wait === false) {
      // The outcome is recorded in `state` / `ready()`.
      engine.connect().catch(() => undefined);
      return engine;
    }
    await engine.connect();
    return engine;
  }

  /** A handle to a named engine started elsewhere. */
  static async connect(name: string, options: { namespace?: string; model?: string } = {}): Promise<LLMEngine> {
    const handle = await getActor<EngineActorApi>(name, options.namespace ? { namespace: options.namespace } : {});
    const engine = new LLMEngine(handle, options.model ?? name, undefined);
    await engine.connect();
    return engine;
  }

  private async connect(): Promise<void> {
    if (this.closed) throw new EngineDeadError(`the engine for ${this.model} was shut down`);
    if (this.socket) return;
    if (this.currentState === 'dead' && this.lastError) throw this.lastError;
    this.connecting ??= (async () => {
      let address: string;
      try {
        address = await get(this.actor.address.remote());
      } catch (e) {
        let err: Error;
        if (e instanceof ActorDiedError && e.reason !== 'constructor') {
          err = new EngineDeadError(`the engine for ${this.model} is dead (${e.info.detail}); deploy it again, or give it maxRestarts`);
        } else {
          const detail = e instanceof TaskError ? `${e.remoteName}: ${e.remoteMessage}` : (e as Error).message;
          err = new EngineStartError(this.model, detail);
        }
        this.setState('dead', err);
        throw err;
      }
      if (this.closed) throw new EngineDeadError(`the engine for ${this.model} was shut down`);
      // A tcp data plane is a CURVE server whose public key only cluster members can ask for.
      const serverKey = address.startsWith('tcp://') ? String(await get(this.actor.server_key.remote())) : '';
      const curve = serverKey ? { curveServerKey: serverKey, ...clientKeyPair() } : {};
      const sock = new zmq.Dealer({ sendHighWaterMark: 0, receiveHighWaterMark: 0, linger: 0, ...curve });
      sock.connect(address);
      this.socket = sock;
      this.address = address;
      void this.receive(sock);
      void this.watch(sock);
      this.setState('ready');
    })().finally(() => {
      this.connecting = undefined;
    });
    await this.connecting;
  }

  private send(body: EnvelopeBody): void {
    const sock = this.socket;
    if (!sock) return;
    const frames = encodeMessage(body);
    this.sendChain = this.sendChain.then(() => sock.send(frames)).catch(() => undefined);
  }

  /** The engine's process went away: fail what is in flight; the next call reconnects (after a restart). */
  private async watch(sock: zmq.Dealer): Promise<void> {
    try {
      for await (const ev of sock.events) {
        if (ev.type === 'disconnect') {
          this.lost(sock, `the engine process for ${this.model} (${this.address}) died`);
          return;
        }
      }
    } catch {
      /* socket closed */
    }
  }

  private lost(sock: zmq.Dealer, why: string): void {
    if (this.socket !== sock) return;
    this.socket = undefined;
    sock.close();
    // A killed engine cannot remove its ipc socket file: do it here (the path names the dead pid).
    if (this.address?.startsWith('ipc://')) rmSync(this.address.slice('ipc://'.length), { force: true });
    // State first: a router that retries the failed requests must already see this engine as gone.
    const restartable = this.maxRestarts === undefined || this.maxRestarts !== 0;
    if (restartable) this.setState('restarting');
    else this.setState('dead', new EngineDeadError(`${why}; it was deployed without restarts (maxRestarts)`));
    this.failPending(why);
    // Reconnect as soon as the actor is back (or learn that it is not coming back).
    if (restartable && !this.closed) this.connect().catch(() => undefined);
  }

  /** Fail every request and stats call in flight on this handle with EngineDeadError. */
  private failPending(why: string): void {
    for (const [id, p] of this.pending) {
      p.error = new EngineDeadError(`${why}; request ${id} failed`);
      p.done = true;
      p.wake?.();
    }
    this.pending.clear();
    const rejects = this.statsRejects;
    this.statsRejects = new Map();
    this.statsWaiters.clear();
    for (const r of rejects.values()) r(new EngineDeadError(`${why}; stats request failed`));
  }

  private async receive(sock: zmq.Dealer): Promise<void> {
    try {
      for await (const frames of sock) {
        const { envelope, kind } = decodeMessage(frames);
        if (kind === 'generateDeltas') {
          for (const d of envelope.generateDeltas!.deltas ?? []) {
            const p = this.pending.get(d.requestId ?? '');
            if (!p) continue;
            const delta: StreamDelta = {
              requestId: d.requestId ?? '',
              index: d.index ?? 0,
              text: d.text ?? '',
              tokenIds: d.tokenIds ?? [],
              finishReason: d.finishReason || undefined,
              promptTokens: d.promptTokens ?? 0,
              completionTokens: d.completionTokens ?? 0,
            };
            // Only requests that asked for logprobs carry them: the common path builds nothing more.
            if (d.logprobs && d.logprobs.length > 0) delta.logprobs = tokenLogprobsOf(d);
            pushCoalesced(p.deltas, delta);
            if (delta.finishReason && --p.open <= 0) {
              p.done = true;
              this.pending.delete(delta.requestId);
            }
            p.wake?.();
          }
        } else if (kind === 'generateError') {
          const e = envelope.generateError!;
          const p = this.pending.get(e.requestId ?? '');
          if (!p) continue;
          p.error = new GenerateRequestError(
            e.code ?? 'engine_error',
            e.message ?? 'generation failed',
            e.field || undefined,
            e.limit ? Number(e.limit) : undefined,
          );
          p.done = true;
          this.pending.delete(e.requestId ?? '');
          p.wake?.();
        } else if (kind === 'engineStats') {
          const s = envelope.engineStats!;
          const w = this.statsWaiters.get(Number(s.requestId));
          this.statsWaiters.delete(Number(s.requestId));
          this.statsRejects.delete(Number(s.requestId));
          w?.({
            waiting: s.waiting ?? 0,
            running: s.running ?? 0,
            kvCacheUsage: s.kvCacheUsage ?? 0,
            model: s.model ?? '',
            maxModelLen: s.maxModelLen ?? 0,
            backend: s.backend ?? '',
          });
        }
      }
    } catch {
      /* socket closed */
    }
  }

  /**
   * Stream one completion's deltas as they are produced. Abort with `signal` (or `abort(requestId)`);
   * an aborted stream ends with a delta whose finishReason is 'abort'.
   */
  async *stream(
    prompt: Prompt,
    params: SamplingParams = {},
    options: { signal?: AbortSignal; requestId?: string } = {},
  ): AsyncGenerator<StreamDelta, void, undefined> {
    // Checked here with the schema the HTTP edge uses: a bad value is a typed error before it is sent.
    const problem = samplingProblem(params);
    if (problem) throw new GenerateRequestError('invalid_params', problem[0], problem[1]);
    await this.connect();
    const requestId = options.requestId ?? `${this.prefix}-${++this.seq}`;
    const p: Pending = { deltas: [], wake: undefined, done: false, error: undefined, open: params.n ?? 1 };
    this.pending.set(requestId, p);
    const req: tsray.v1.IGenerateRequest = { requestId, params: toWireParams(params) };
    if (typeof prompt === 'string') req.prompt = prompt;
    else if (Array.isArray(prompt)) req.promptTokenIds = prompt;
    else req.messages = prompt.messages;
    this.send({ generateRequest: req });
    const onAbort = () => this.abort(requestId);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    let finished = false;
    try {
      for (;;) {
        // A consumer slower than the engine gets what piled up as one delta per completion (as vLLM's
        // RequestOutputCollector does): receive() merged them as they came (pushCoalesced).
        while (p.deltas.length > 0) yield p.deltas.shift()!;
        if (p.error) throw p.error;
        if (p.done) {
          finished = true;
          return;
        }
        await new Promise<void>((r) => (p.wake = r));
        p.wake = undefined;
      }
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      // The consumer stopped early (break/return): abort the request in the engine.
      if (!finished && !p.done) this.abort(requestId);
    }
  }

  /** Generate completions for one prompt or a batch (sent concurrently; results in input order). */
  async generate(prompts: Prompt | Prompt[], params: SamplingParams = {}, options: { signal?: AbortSignal } = {}): Promise<Completion[]> {
    return Promise.all(
      promptList(prompts).map((p) => collectCompletion(this.stream(p, params, options.signal ? { signal: options.signal } : {}), params.n ?? 1, this.model)),
    );
  }

  /** Abort a request (its stream ends with finishReason 'abort'). */
  abort(requestId: string): void {
    this.send({ abortGenerate: { requestIds: [requestId] } });
  }

  /** Waiting and running requests, KV-cache use. */
  async stats(): Promise<EngineStats> {
    await this.connect();
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.statsWaiters.set(id, resolve);
      this.statsRejects.set(id, reject);
      this.send({ engineStatsRequest: { requestId: id } });
    });
  }

  /** Requests in flight from this handle. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Where the engine runs (backend, pid, CUDA_VISIBLE_DEVICES). */
  /** Token ids of a text (or of chat messages, with the chat template), with the engine's tokenizer. */
  async tokenize(prompt: string | ChatMessage[], options: { addSpecialTokens?: boolean } = {}): Promise<number[]> {
    return get(this.actor.tokenize.remote(prompt, options.addSpecialTokens ?? true));
  }

  /** The text of token ids, with the engine's tokenizer (special tokens kept). */
  async detokenize(tokenIds: number[]): Promise<string> {
    return get(this.actor.detokenize.remote(tokenIds));
  }

  /** This engine (it tokenizes itself) while it is ready. */
  tokenizer(): EngineTokenizer | undefined {
    return this.currentState === 'ready' ? this : undefined;
  }

  /** Where the engine runs and what it serves (backend, pid, tensor-parallel size, GPU ids). */
  async info(): Promise<EngineInfo> {
    return get(this.actor.info.remote());
  }

  /** Stop the engine and its process. */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const wasReady = this.currentState === 'ready';
    this.setState('dead', new EngineDeadError(`the engine for ${this.model} was shut down`));
    try {
      // A graceful stop lets the backend release the model; an engine still loading (or not even
      // placed yet) is not waited for long.
      await get(this.actor.shutdown.remote(), { timeout: wasReady ? 30 : 5 });
    } catch {
      /* already dead */
    }
    this.socket?.close();
    this.socket = undefined;
    this.failPending(`the engine for ${this.model} was shut down`);
    try {
      kill(this.actor);
    } catch {
      /* already dead */
    }
    // The process is killed right after its socket closes; its ipc socket file may outlive it.
    if (this.address?.startsWith('ipc://')) rmSync(this.address.slice('ipc://'.length), { force: true });
  }

  /**
   * Close this handle after its engine process was killed elsewhere: as `close`, and the dead
   * process's ipc socket file is removed.
   * @internal
   */
  closeKilled(reason: string): void {
    this.close(reason);
    if (this.address?.startsWith('ipc://')) rmSync(this.address.slice('ipc://'.length), { force: true });
  }

  /** Close this handle's connection without stopping the engine (in-flight requests fail with EngineDeadError saying `reason`). */
  close(reason = `the handle to the engine for ${this.model} was closed`): void {
    this.closed = true;
    this.setState('dead', new EngineDeadError(reason));
    this.socket?.close();
    this.socket = undefined;
    this.failPending(reason);
  }
}

/**
 * Queue `d` for its consumer, merged into the queued delta of the same completion (same `index`) when
 * that one is not finished: a consumer that does not pull (an SSE socket waiting for 'drain') holds one
 * delta per completion whose text and token ids grow, as vLLM's `RequestOutputCollector`, not one
 * object per token. Queued deltas belong to the queue (the consumer gets them only when taken), so
 * they are extended in place. (Not exported from the package; test/coalesce.spec.ts imports it.)
 */
export function pushCoalesced(queue: StreamDelta[], d: StreamDelta): void {
  // With n > 1 the completions interleave: look back for this completion's queued delta (at most n).
  for (let i = queue.length - 1; i >= 0; i--) {
    const q = queue[i]!;
    if (q.index !== d.index) continue;
    if (q.finishReason !== undefined) break;
    q.text += d.text;
    for (const t of d.tokenIds) q.tokenIds.push(t);
    if (d.logprobs) {
      if (q.logprobs) for (const l of d.logprobs) q.logprobs.push(l);
      else q.logprobs = d.logprobs;
    }
    q.finishReason = d.finishReason;
    q.promptTokens = d.promptTokens;
    q.completionTokens = d.completionTokens;
    return;
  }
  queue.push(d);
}

/** The logprob entries of a wire delta (parallel lists) as one object per token. @internal */
export function tokenLogprobsOf(d: {
  tokenIds?: number[] | null;
  logprobs?: number[] | null;
  tokens?: string[] | null;
  topLogprobs?: { tokenIds?: number[] | null; logprobs?: number[] | null; tokens?: string[] | null }[] | null;
}): TokenLogprob[] {
  const ids = d.tokenIds ?? [];
  const lps = d.logprobs ?? [];
  const tokens = d.tokens ?? [];
  const tops = d.topLogprobs ?? [];
  return lps.map((logprob, i) => {
    const t = tops[i];
    const tIds = t?.tokenIds ?? [];
    const tLps = t?.logprobs ?? [];
    const tTokens = t?.tokens ?? [];
    return {
      tokenId: ids[i] ?? 0,
      token: tokens[i] ?? '',
      logprob,
      top: tIds.map((tokenId, j) => ({ tokenId, token: tTokens[j] ?? '', logprob: tLps[j] ?? 0 })),
    };
  });
}

/** A prompt or a batch of prompts as a list (a token-id list is one prompt). @internal */
export function promptList(prompts: Prompt | Prompt[]): Prompt[] {
  return Array.isArray(prompts) && (prompts.length === 0 || typeof prompts[0] !== 'number') ? (prompts as Prompt[]) : [prompts as Prompt];
}

/** Gather a stream of deltas into a Completion (n sequences). @internal */
export async function collectCompletion(stream: AsyncIterable<StreamDelta>, n: number, model: string): Promise<Completion> {
  const parts = Array.from({ length: n }, () => ({
    text: '',
    tokenIds: [] as number[],
    logprobs: undefined as TokenLogprob[] | undefined,
    finishReason: '',
    promptTokens: 0,
    completionTokens: 0,
  }));
  for await (const d of stream) {
    const c = parts[d.index]!;
    c.text += d.text;
    c.tokenIds.push(...d.tokenIds);
    if (d.logprobs) (c.logprobs ??= []).push(...d.logprobs);
    if (d.finishReason) c.finishReason = d.finishReason;
    c.promptTokens = d.promptTokens;
    c.completionTokens = d.completionTokens;
  }
  if (parts[0]!.finishReason === 'abort') throw new GenerateAbortedError(`request for ${model} was aborted`);
  const done = parts.map((c) => ({
    text: c.text,
    tokenIds: c.tokenIds,
    finishReason: c.finishReason,
    ...(c.logprobs ? { logprobs: c.logprobs } : {}),
    usage: { promptTokens: c.promptTokens, completionTokens: c.completionTokens },
  }));
  return n > 1 ? { ...done[0]!, alternatives: done.slice(1) } : done[0]!;
}
