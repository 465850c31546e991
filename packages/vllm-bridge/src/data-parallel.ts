/**
 * Data parallel inference: N independent engines (dense models) behind a router that sends each
 * request to the least-loaded ready rank by `4·waiting + running` (vLLM's own rule).
 *
 * Rank failure: a rank whose process dies leaves routing at once (its state turns 'restarting', or
 * 'dead' without `maxRestarts`). Its in-flight requests that had produced no output yet are sent
 * again to another ready rank (once, `requestRetries`); requests that had already streamed output
 * fail with `EngineDeadError` (a partial answer cannot be resumed elsewhere). The actor restarts the
 * rank in its own placement-group bundle, and the rank rejoins routing once its model is loaded.
 * @module
 */
import { get, placementGroup, removePlacementGroup, type PlacementGroup } from '@tsray/core';
import {
  collectCompletion,
  LLMEngine,
  type Completion,
  type DeployOptions,
  type EngineInfo,
  promptList,
  type EngineState,
  type EngineStats,
  type Prompt,
  type SamplingParams,
  type StreamDelta,
} from './engine.js';
import { EngineDeadError } from './errors.js';
import type { EngineClient, EngineTokenizer } from './engine-client.js';

/** Options of `DataParallel.deploy`. */
export interface DataParallelOptions extends Omit<DeployOptions, 'numGpus' | 'name' | 'schedulingStrategy' | 'wait'> {
  /** Number of ranks (engines). */
  ranks: number;
  /** GPUs per rank (0 = CPU engines). */
  gpusPerRank?: number;
  /** How ranks are placed over nodes: a placement group with one bundle per rank. Default 'PACK'. */
  strategy?: 'PACK' | 'SPREAD' | 'STRICT_PACK' | 'STRICT_SPREAD';
  /** Name prefix: rank i is registered as `<name>-<i>`. */
  name?: string;
  /** Prefer the rank that served the same prompt prefix (chars) before, unless it is much busier. */
  prefixAffinity?: number;
  /** How much busier (in 4·waiting + running) a prefix's rank may be and still get it. Default 32 (8 queued requests). */
  prefixImbalance?: number;
  /** How often rank stats are refreshed (ms). Default 100 (vLLM's coordinator period). */
  statsIntervalMs?: number;
  /**
   * When `deploy` returns: 'all' ranks ready (default; a rank that fails to start fails the deploy),
   * 'any' rank ready, or 'none' (at once; `ready()` and the ranks' states tell the rest).
   */
  waitFor?: 'all' | 'any' | 'none';
  /**
   * How many times a request that produced no output yet is sent to another rank when its rank
   * dies under it (default 1; 0 = fail it with EngineDeadError).
   */
  requestRetries?: number;
}

/** Load and state of one rank, as `DataParallel.stats()` reports it. */
export interface RankStats extends EngineStats {
  rank: number;
  /** Requests the router sent to this rank. */
  served: number;
  state: EngineState;
  /** Times this rank's process died and was restarted. */
  restarts: number;
}

interface RankSlot {
  engine: LLMEngine;
  /** Last reported by the engine. */
  waiting: number;
  running: number;
  /** Sent by this router since the last report (optimistic accounting, as vLLM's DP client does). */
  sentSinceStats: number;
  served: number;
  restarts: number;
  last: EngineStats | undefined;
}

/** N engines behind a least-loaded router. */
export class DataParallel implements EngineClient {
  private timer: NodeJS.Timeout | undefined;
  private readonly prefixes = new Map<string, number>();
  private start = 0;
  private readonly readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private stopped = false;

  private constructor(
    private readonly slots: RankSlot[],
    private readonly pg: PlacementGroup | undefined,
    private readonly opts: DataParallelOptions,
  ) {
    const every = opts.statsIntervalMs ?? 100;
    this.timer = setInterval(() => void this.refresh(), every);
    this.timer.unref();
    for (const s of slots) {
      s.engine.onState((state) => {
        if (state === 'restarting') s.restarts++;
        if (state === 'ready') {
          s.waiting = 0;
          s.running = 0;
          s.sentSinceStats = 0;
        }
        this.settleReady();
      });
    }
  }

  /** Start `ranks` engines (in a placement group with one bundle per rank) and the router. */
  static async deploy(opts: DataParallelOptions): Promise<DataParallel> {
    if (!Number.isInteger(opts.ranks) || opts.ranks < 1) throw new RangeError(`DataParallel.deploy: ranks must be an integer >= 1, got ${opts.ranks}`);
    const gpus = opts.gpusPerRank ?? 0;
    // Each bundle has room for the engine actor's default scheduling need (1 CPU).
    const cpus = opts.numCpus ?? 1;
    const bundle: Record<string, number> = { CPU: Math.max(cpus, 1) };
    if (gpus > 0) bundle['GPU'] = gpus;
    const pg = placementGroup(
      Array.from({ length: opts.ranks }, () => ({ ...bundle })),
      { strategy: opts.strategy ?? 'PACK', name: opts.name ?? 'dp' },
    );
    const waitFor = opts.waitFor ?? 'all';
    if (waitFor !== 'none') await get(pg.ready());
    const engines: LLMEngine[] = [];
    for (let i = 0; i < opts.ranks; i++) {
      engines.push(
        await LLMEngine.deploy({
          ...opts,
          numGpus: gpus,
          numCpus: cpus,
          wait: false,
          ...(opts.name ? { name: `${opts.name}-${i}` } : {}),
          schedulingStrategy: { type: 'PLACEMENT_GROUP', placementGroup: pg, bundleIndex: i },
        }),
      );
    }
    const dp = new DataParallel(
      engines.map((engine) => ({ engine, waiting: 0, running: 0, sentSinceStats: 0, served: 0, restarts: 0, last: undefined })),
      pg,
      opts,
    );
    try {
      if (waitFor === 'all') await Promise.all(engines.map((e) => e.ready()));
      else if (waitFor === 'any') await dp.ready();
    } catch (e) {
      await dp.shutdown();
      throw e;
    }
    return dp;
  }

  /** Number of ranks. */
  get size(): number {
    return this.slots.length;
  }

  /** Ranks that take requests now. */
  get readyRanks(): number {
    return this.slots.filter((s) => s.engine.state === 'ready').length;
  }

  /** Each rank's state, by rank. */
  get states(): EngineState[] {
    return this.slots.map((s) => s.engine.state);
  }

  /** The model folder the ranks serve. */
  get model(): string {
    return this.slots[0]!.engine.model;
  }

  /**
   * The group's state: 'ready' while any rank is; 'dead' once every rank is (or after shutdown);
   * else 'starting' while a rank loads for the first time, 'restarting' otherwise.
   */
  get state(): EngineState {
    const states = this.states;
    if (states.includes('ready')) return 'ready';
    if (this.stopped || states.every((s) => s === 'dead')) return 'dead';
    return states.includes('starting') ? 'starting' : 'restarting';
  }

  /** The first rank's error once the whole group is dead. */
  get error(): Error | undefined {
    if (this.state !== 'dead') return undefined;
    return this.slots.find((s) => s.engine.error)?.engine.error ?? new EngineDeadError(`every rank of the data-parallel group for ${this.model} is dead`);
  }

  /** A ready rank's tokenizer (all ranks load the same model); undefined while none is ready. */
  tokenizer(): EngineTokenizer | undefined {
    return this.slots.find((s) => s.engine.state === 'ready')?.engine;
  }

  /** Each ready rank's engine info (tensor-parallel size, GPU ids, pid), in rank order. */
  async info(): Promise<EngineInfo[]> {
    const ready = this.slots.filter((s) => s.engine.state === 'ready');
    const infos = await Promise.allSettled(ready.map((s) => s.engine.info()));
    return infos.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  }

  /** Rank `i`'s engine, for per-rank calls. */
  rank(i: number): LLMEngine {
    const s = this.slots[i];
    if (!s) throw new RangeError(`rank ${i} is out of range (0..${this.slots.length - 1})`);
    return s.engine;
  }

  /**
   * Resolves once at least one rank is ready; rejects (with the first rank's error) when every rank
   * is dead.
   */
  ready(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.readyWaiters.push({ resolve, reject });
      this.settleReady();
    });
  }

  private settleReady(): void {
    if (this.readyWaiters.length === 0) return;
    const states = this.states;
    let outcome: Error | null | undefined;
    if (states.includes('ready')) outcome = null;
    else if (this.stopped || states.every((s) => s === 'dead')) {
      outcome = this.slots.find((s) => s.engine.error)?.engine.error ?? new EngineDeadError(`every rank of the data-parallel group for ${this.model} is dead`);
    }
    if (outcome === undefined) return;
    const waiters = this.readyWaiters.splice(0);
    for (const w of waiters) {
      if (outcome) w.reject(outcome);
      else w.resolve();
    }
  }

  private async refresh(): Promise<void> {
    await Promise.all(
      this.slots.map(async (s) => {
        if (s.engine.state !== 'ready') return;
        try {
          const st = await s.engine.stats();
          s.last = st;
          s.waiting = st.waiting;
          s.running = st.running;
          s.sentSinceStats = 0;
        } catch {
          /* the rank died meanwhile: its state says so */
        }
      }),
    );
  }

  /**
   * The rank a request goes to: the ready rank with the least 4·waiting + running (with optimistic
   * accounting; ties rotate), or the prefix's rank when prefix affinity holds. -1 when no rank is ready.
   */
  pick(prompt?: Prompt): number {
    const n = this.slots.length;
    const score = (s: RankSlot) => 4 * (s.waiting + s.sentSinceStats) + s.running;
    const ready = (i: number) => this.slots[i]!.engine.state === 'ready';
    const aff = this.opts.prefixAffinity;
    if (aff && typeof prompt === 'string' && prompt.length >= aff) {
      const r = this.prefixes.get(prompt.slice(0, aff));
      if (r !== undefined && ready(r)) {
        const best = Math.min(...this.slots.filter((_, i) => ready(i)).map(score));
        if (score(this.slots[r]!) <= best + (this.opts.prefixImbalance ?? 32)) return r;
      }
    }
    let bestI = -1;
    let best = Infinity;
    for (let k = 0; k < n; k++) {
      const i = (this.start + k) % n;
      if (!ready(i)) continue;
      const sc = score(this.slots[i]!);
      if (sc < best) {
        best = sc;
        bestI = i;
      }
    }
    this.start = (this.start + 1) % n;
    return bestI;
  }

  /** Pick a ready rank (waiting for one while every rank is starting or restarting). */
  private async route(prompt: Prompt): Promise<RankSlot> {
    for (;;) {
      if (this.stopped) throw new EngineDeadError(`the data-parallel group for ${this.model} was shut down`);
      const i = this.pick(prompt);
      if (i >= 0) {
        const s = this.slots[i]!;
        s.sentSinceStats++;
        s.served++;
        if (this.opts.prefixAffinity && typeof prompt === 'string' && prompt.length >= this.opts.prefixAffinity) {
          this.prefixes.set(prompt.slice(0, this.opts.prefixAffinity), i);
        }
        return s;
      }
      await this.ready();
    }
  }

  /** Spread a batch over the ranks; results in input order. */
  async generate(prompts: Prompt | Prompt[], params: SamplingParams = {}, options: { signal?: AbortSignal } = {}): Promise<Completion[]> {
    return Promise.all(promptList(prompts).map((p) => collectCompletion(this.stream(p, params, options), params.n ?? 1, this.model)));
  }

  /**
   * Stream one request from the rank the router picks. If that rank dies before the first delta,
   * the request goes to another ready rank (`requestRetries`, default once); after output has
   * been streamed it fails with EngineDeadError.
   */
  async *stream(prompt: Prompt, params: SamplingParams = {}, options: { signal?: AbortSignal } = {}): AsyncGenerator<StreamDelta, void, undefined> {
    let retriesLeft = this.opts.requestRetries ?? 1;
    for (;;) {
      const slot = await this.route(prompt);
      let produced = false;
      try {
        for await (const d of slot.engine.stream(prompt, params, options)) {
          produced = true;
          yield d;
        }
        return;
      } catch (e) {
        if (e instanceof EngineDeadError && !produced && retriesLeft > 0 && !options.signal?.aborted && !this.stopped) {
          retriesLeft--;
          continue;
        }
        throw e;
      }
    }
  }

  /**
   * Per rank: load (fresh from each ready rank, the last known numbers otherwise), state, restarts
   * and how many requests the router sent it.
   */
  async stats(): Promise<RankStats[]> {
    return Promise.all(
      this.slots.map(async (s, rank) => {
        let st = s.last;
        if (s.engine.state === 'ready') {
          try {
            st = await s.engine.stats();
            s.last = st;
          } catch {
            /* died meanwhile */
          }
        }
        const base: EngineStats = st ?? { waiting: 0, running: 0, kvCacheUsage: 0, model: s.engine.model, maxModelLen: 0, backend: '' };
        const live = s.engine.state === 'ready' ? base : { ...base, waiting: 0, running: 0 };
        return { ...live, rank, served: s.served, state: s.engine.state, restarts: s.restarts };
      }),
    );
  }

  /** Stop every rank and release the placement group. */
  async shutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.stopped = true;
    await Promise.all(this.slots.map((s) => s.engine.shutdown()));
    this.settleReady();
    if (this.pg) {
      try {
        removePlacementGroup(this.pg);
      } catch {
        /* removed already */
      }
    }
  }
}
