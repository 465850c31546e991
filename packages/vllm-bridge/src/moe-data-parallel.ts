/**
 * MoE data parallel: one vLLM DP group managed by the bridge. A MoE model's DP ranks run in lockstep
 * (expert layers span every rank), so they cannot be independent engines behind our router; vLLM owns
 * the group and balances requests over its ranks. The bridge places it and keeps it alive:
 *
 * 1. one placement group, one bundle per rank (`gpusPerRank` GPUs = each rank's TP size);
 * 2. rank actors (`tsray.engine.vllm_dp`): rank 0 = the head, ranks 1..N-1 = headless engines;
 * 3. the head picks its handshake endpoint (its node address, a free port), the headless ranks are
 *    started with it, then the head (`AsyncLLM` with `data_parallel_size=N`) — it is ready once every
 *    rank has joined;
 * 4. requests go to the head only (same data plane as `LLMEngine`).
 *
 * Failure: a rank that cannot start fails `deploy` with EngineStartError naming the rank (everything
 * started is stopped and the placement group released). A rank (or the head) that dies later takes the
 * whole group down — in-flight requests fail with EngineDeadError — and the group is started again in
 * the same placement group if `maxRestarts` allows (state 'restarting' → 'ready'), else it is 'dead'.
 * @module
 */
import { get, kill, placementGroup, python, removePlacementGroup, TaskError, type ActorHandle, type PlacementGroup } from '@tsray/core';
import {
  collectCompletion,
  engineActorOptions,
  engineConfig,
  LLMEngine,
  promptList,
  type Completion,
  type DeployOptions,
  type EngineInfo,
  type EngineState,
  type EngineStats,
  type Prompt,
  type SamplingParams,
  type StreamDelta,
} from './engine.js';
import { EngineDeadError, EngineStartError } from './errors.js';
import type { EngineClient, EngineTokenizer } from './engine-client.js';

/** Options of `MoEDataParallel.deploy`. */
export interface MoEDataParallelOptions extends Omit<DeployOptions, 'numGpus' | 'name' | 'schedulingStrategy' | 'wait' | 'maxRestarts'> {
  /** DP size: number of ranks (vLLM engine cores), one placement-group bundle each. */
  ranks: number;
  /** GPUs per rank (the rank's tensor-parallel size). Default 1. */
  gpusPerRank?: number;
  /** Placement of the ranks over nodes. Default 'PACK'. */
  strategy?: 'PACK' | 'SPREAD' | 'STRICT_PACK' | 'STRICT_SPREAD';
  /** Name of the placement group. */
  name?: string;
  /** Restart the whole group this many times when a rank dies (-1 = forever). Default 0. */
  maxRestarts?: number;
  /** How long the head waits for every rank to join (s). Default 600 (vLLM's engine-ready timeout). */
  handshakeTimeoutS?: number;
  /** Return at once (`ready()` / `state` tell the rest) instead of waiting for the group. Default true. */
  wait?: boolean;
}

/** Where a rank runs and the engine arguments it was given. */
export interface MoERankInfo {
  rank: number;
  pid: number;
  backend: string;
  cuda_visible_devices: string | null;
  /** The `AsyncEngineArgs` keyword arguments of this rank (data_parallel_* included). */
  args: Record<string, unknown>;
  /** When the rank was told to start (Unix seconds): headless ranks before the head. */
  started_at: number;
}

interface HeadApi {
  dp_endpoint(): { address: string; rpc_port: number };
  start_group(): boolean;
  info(): { backend: string; pid: number; cuda_visible_devices: string | null; dp: { args: Record<string, unknown>; started_at: number; joined: number[] } };
  shutdown(): boolean;
}

interface RankApi {
  start(endpoint: { address: string; rpc_port: number }): { rank: number; args: Record<string, unknown> };
  wait_exit(): string;
  info(): { backend: string; pid: number; cuda_visible_devices: string | null; dp: { args: Record<string, unknown>; started_at: number } };
  shutdown(): boolean;
}

interface Generation {
  head: ActorHandle<HeadApi>;
  ranks: ActorHandle<RankApi>[];
  engine: LLMEngine | undefined;
  over: boolean;
}

const detail = (e: unknown): string =>
  e instanceof TaskError ? `${e.remoteName}: ${e.remoteMessage}` : e instanceof EngineStartError ? e.detail : (e as Error).message;

/** One vLLM data-parallel group (MoE models) behind a single head. */
export class MoEDataParallel implements EngineClient {
  private gen: Generation | undefined;
  private currentState: EngineState = 'starting';
  private lastError: Error | undefined;
  private restartsLeft: number;
  private restartCount = 0;
  private readonly listeners = new Set<(s: EngineState) => void>();
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private stopped = false;

  private constructor(
    private readonly opts: MoEDataParallelOptions,
    private readonly pg: PlacementGroup,
  ) {
    this.restartsLeft = opts.maxRestarts ?? 0;
  }

  /** Place the group and start it: headless ranks first, then the head. */
  static async deploy(opts: MoEDataParallelOptions): Promise<MoEDataParallel> {
    if (!Number.isInteger(opts.ranks) || opts.ranks < 1) throw new RangeError(`MoEDataParallel.deploy: ranks must be an integer >= 1, got ${opts.ranks}`);
    const gpus = opts.gpusPerRank ?? 1;
    const bundle: Record<string, number> = { CPU: Math.max(opts.numCpus ?? 1, 1) };
    if (gpus > 0) bundle['GPU'] = gpus;
    const pg = placementGroup(
      Array.from({ length: opts.ranks }, () => ({ ...bundle })),
      { strategy: opts.strategy ?? 'PACK', name: opts.name ?? 'moe-dp' },
    );
    const group = new MoEDataParallel(opts, pg);
    const started = (async () => {
      await get(pg.ready());
      await group.startGeneration();
    })().then(
      () => group.setState('ready'),
      async (e: unknown) => {
        group.setState('dead', e as Error);
        await group.shutdown();
        throw e;
      },
    );
    if (opts.wait === false) {
      started.catch(() => undefined);
      return group;
    }
    await started;
    return group;
  }

  /** DP size. */
  get size(): number {
    return this.opts.ranks;
  }

  /** The model folder. */
  get model(): string {
    return this.opts.model;
  }

  /** The group's state: 'starting', 'ready', 'restarting' (a rank died, restarting the group), 'dead'. */
  get state(): EngineState {
    return this.currentState;
  }

  /** Why the group is dead, once it is. */
  get error(): Error | undefined {
    return this.currentState === 'dead' ? this.lastError : undefined;
  }

  /** Times the group was restarted after a rank died. */
  get restarts(): number {
    return this.restartCount;
  }

  /** Call `listener` on every state change; returns the unsubscribe function. */
  onState(listener: (state: EngineState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Settles when the group is ready (resolves) or dead (rejects). */
  ready(): Promise<void> {
    if (this.currentState === 'ready') return Promise.resolve();
    if (this.currentState === 'dead') return Promise.reject(this.lastError ?? new EngineDeadError(`the MoE DP group for ${this.model} is dead`));
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  private setState(state: EngineState, error?: Error): void {
    if (error) this.lastError = error;
    if (state === this.currentState) return;
    this.currentState = state;
    if (state === 'ready' || state === 'dead') {
      for (const w of this.readyWaiters.splice(0)) {
        if (state === 'ready') w.resolve();
        else w.reject(this.lastError ?? new EngineDeadError(`the MoE DP group for ${this.model} is dead`));
      }
    }
    for (const l of [...this.listeners]) l(state);
  }

  /** Start one generation of the group's processes in the placement group. */
  private async startGeneration(): Promise<void> {
    const o = this.opts;
    const n = o.ranks;
    const gpus = o.gpusPerRank ?? 1;
    const at = (i: number): DeployOptions => ({
      ...o,
      numGpus: gpus,
      numCpus: o.numCpus ?? 1,
      maxRestarts: 0,
      schedulingStrategy: { type: 'PLACEMENT_GROUP', placementGroup: this.pg, bundleIndex: i },
    });
    const dp = (rank: number) => ({ rank, size: n, ...(o.handshakeTimeoutS ? { handshake_timeout_s: o.handshakeTimeoutS } : {}) });
    const head = python.actor<HeadApi>('tsray.engine.vllm_dp:DPHeadActor', engineActorOptions(at(0))).remote({ ...engineConfig(at(0)), dp: dp(0) });
    const ranks = Array.from({ length: n - 1 }, (_, k) =>
      python.actor<RankApi>('tsray.engine.vllm_dp:HeadlessRankActor', engineActorOptions(at(k + 1))).remote({ ...engineConfig(at(k + 1)), dp: dp(k + 1) }),
    );
    const gen: Generation = { head, ranks, engine: undefined, over: false };
    this.gen = gen;
    const fail = (rank: number, e: unknown): never => {
      throw new EngineStartError(this.model, `MoE DP rank ${rank}${rank === 0 ? ' (head)' : ''}: ${detail(e)}`);
    };
    try {
      const endpoint = await get(head.dp_endpoint.remote()).catch((e: unknown) => fail(0, e));
      await Promise.all(ranks.map((r, k) => get(r.start.remote(endpoint)).catch((e: unknown) => fail(k + 1, e))));
      await get(head.start_group.remote()).catch((e: unknown) => fail(0, e));
      const engine = LLMEngine.fromActor(head, this.model, 0);
      gen.engine = engine;
      await engine.ready().catch((e: unknown) => fail(0, e));
    } catch (e) {
      this.endGeneration(gen, 'a rank failed to start');
      throw e;
    }
    // Watch: any rank's exit, or the head's death, takes the group down.
    ranks.forEach((r, k) => {
      get(r.wait_exit.remote()).then(
        (why) => this.groupFailed(gen, `rank ${k + 1}: ${why}`),
        (e: unknown) => this.groupFailed(gen, `rank ${k + 1}: ${detail(e)}`),
      );
    });
    gen.engine!.onState((s) => {
      if (s === 'dead' || s === 'restarting') this.groupFailed(gen, `rank 0 (head): ${gen.engine!.error?.message ?? 'its process died'}`);
    });
  }

  /** Stop one generation's processes (kill: a lockstep group is not drained rank by rank). */
  private endGeneration(gen: Generation, why = 'it was stopped'): void {
    gen.over = true;
    for (const a of [gen.head, ...gen.ranks]) {
      try {
        kill(a as ActorHandle<unknown>);
      } catch {
        /* dead already */
      }
    }
    // In-flight requests on the head fail with EngineDeadError.
    gen.engine?.closeKilled(`the MoE DP group for ${this.model} went down (${why})`);
  }

  private groupFailed(gen: Generation, why: string): void {
    if (gen.over || this.gen !== gen || this.stopped) return;
    this.endGeneration(gen, why);
    if (this.restartsLeft === 0) {
      this.setState('dead', new EngineDeadError(`the MoE DP group for ${this.model} died (${why}) and has no restart left (maxRestarts)`));
      return;
    }
    if (this.restartsLeft > 0) this.restartsLeft--;
    this.restartCount++;
    this.setState('restarting');
    this.startGeneration().then(
      () => this.setState('ready'),
      (e: unknown) => this.setState('dead', e as Error),
    );
  }

  /** The head's engine handle (requests, stats); undefined while (re)starting. */
  head(): LLMEngine | undefined {
    return this.gen?.engine?.state === 'ready' ? this.gen.engine : undefined;
  }

  private async engine(): Promise<LLMEngine> {
    for (;;) {
      if (this.stopped) throw new EngineDeadError(`the MoE DP group for ${this.model} was shut down`);
      const e = this.head();
      if (e && this.currentState === 'ready') return e;
      await this.ready();
    }
  }

  /** Stream one request through the head (vLLM picks the rank). Waits while the group (re)starts. */
  async *stream(prompt: Prompt, params: SamplingParams = {}, options: { signal?: AbortSignal } = {}): AsyncGenerator<StreamDelta, void, undefined> {
    yield* (await this.engine()).stream(prompt, params, options);
  }

  /** Generate completions (results in input order). */
  async generate(prompts: Prompt | Prompt[], params: SamplingParams = {}, options: { signal?: AbortSignal } = {}): Promise<Completion[]> {
    return Promise.all(promptList(prompts).map((p) => collectCompletion(this.stream(p, params, options), params.n ?? 1, this.model)));
  }

  /** The group's load as the head reports it. */
  async stats(): Promise<EngineStats> {
    return (await this.engine()).stats();
  }

  /** The head engine's info (vLLM's DP ranks share its model and arguments; see rankInfo()). */
  async info(): Promise<EngineInfo> {
    return (await this.engine()).info();
  }

  /** The head's tokenizer while the group is ready. */
  tokenizer(): EngineTokenizer | undefined {
    return this.currentState === 'ready' ? this.head() : undefined;
  }

  /** Each rank's process, GPUs and engine arguments (rank 0 = the head). */
  async rankInfo(): Promise<MoERankInfo[]> {
    const gen = this.gen;
    if (!gen) throw new EngineDeadError(`the MoE DP group for ${this.model} has no running ranks`);
    const all = await Promise.all([get(gen.head.info.remote()), ...gen.ranks.map((r) => get(r.info.remote()))]);
    return all.map((x, rank) => ({
      rank,
      pid: x.pid,
      backend: x.backend,
      cuda_visible_devices: x.cuda_visible_devices,
      args: x.dp.args,
      started_at: x.dp.started_at,
    }));
  }

  /** Stop every rank and release the placement group. */
  async shutdown(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const gen = this.gen;
    if (gen && !gen.over) {
      await gen.engine?.shutdown();
      this.endGeneration(gen);
    }
    if (this.currentState !== 'dead') this.setState('dead', new EngineDeadError(`the MoE DP group for ${this.model} was shut down`));
    try {
      removePlacementGroup(this.pg);
    } catch {
      /* removed already */
    }
  }
}
