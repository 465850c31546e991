/**
 * Data parallel inference: N independent engines (dense models) behind a router that sends each
 * request to the least-loaded rank by `4·waiting + running` (vLLM's own rule).
 * @module
 */
import { get, placementGroup, removePlacementGroup, type PlacementGroup } from '@tsray/core';
import { LLMEngine, type Completion, type DeployOptions, type EngineStats, type Prompt, type SamplingParams, type StreamDelta } from './engine.js';

/** Options of `DataParallel.deploy`. */
export interface DataParallelOptions extends Omit<DeployOptions, 'numGpus' | 'name' | 'schedulingStrategy'> {
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
}

interface RankState {
  engine: LLMEngine;
  /** Last reported by the engine. */
  waiting: number;
  running: number;
  /** Sent by this router since the last report (optimistic accounting, as vLLM's DP client does). */
  sentSinceStats: number;
  served: number;
}

/** N engines behind a least-loaded router. */
export class DataParallel {
  private timer: NodeJS.Timeout | undefined;
  private readonly prefixes = new Map<string, number>();
  private start = 0;

  private constructor(
    private readonly states: RankState[],
    private readonly pg: PlacementGroup | undefined,
    private readonly opts: DataParallelOptions,
  ) {
    const every = opts.statsIntervalMs ?? 100;
    this.timer = setInterval(() => void this.refresh(), every);
    this.timer.unref();
  }

  /** Start `ranks` engines (in a placement group with one bundle per rank) and the router. */
  static async deploy(opts: DataParallelOptions): Promise<DataParallel> {
    if (!Number.isInteger(opts.ranks) || opts.ranks < 1) throw new RangeError(`DataParallel.deploy: ranks must be an integer >= 1, got ${opts.ranks}`);
    const gpus = opts.gpusPerRank ?? 0;
    // Each bundle has room for the engine actor's default scheduling need (1 CPU).
    const cpus = opts.numCpus ?? 1;
    const bundle: Record<string, number> = { CPU: Math.max(cpus, 1) };
    if (gpus > 0) bundle['GPU'] = gpus;
    const pg = placementGroup(Array.from({ length: opts.ranks }, () => ({ ...bundle })), { strategy: opts.strategy ?? 'PACK', name: opts.name ?? 'dp' });
    await get(pg.ready());
    const engines = await Promise.all(
      Array.from({ length: opts.ranks }, (_, i) =>
        LLMEngine.deploy({
          ...opts,
          numGpus: gpus,
          numCpus: cpus,
          ...(opts.name ? { name: `${opts.name}-${i}` } : {}),
          schedulingStrategy: { type: 'PLACEMENT_GROUP', placementGroup: pg, bundleIndex: i },
        }),
      ),
    );
    return new DataParallel(
      engines.map((engine) => ({ engine, waiting: 0, running: 0, sentSinceStats: 0, served: 0 })),
      pg,
      opts,
    );
  }

  /** Number of ranks. */
  get size(): number {
    return this.states.length;
  }

  /** Rank `i`'s engine, for per-rank calls. */
  rank(i: number): LLMEngine {
    const s = this.states[i];
    if (!s) throw new RangeError(`rank ${i} is out of range (0..${this.states.length - 1})`);
    return s.engine;
  }

  private async refresh(): Promise<void> {
    await Promise.all(
      this.states.map(async (s) => {
        try {
          const st = await s.engine.stats();
          s.waiting = st.waiting;
          s.running = st.running;
          s.sentSinceStats = 0;
        } catch {
          /* a dead rank keeps its last numbers */
        }
      }),
    );
  }

  /** The rank a request goes to: least 4·waiting + running (with optimistic accounting), ties rotate. */
  pick(prompt?: Prompt): number {
    const n = this.states.length;
    const score = (s: RankState) => 4 * (s.waiting + s.sentSinceStats) + s.running;
    const aff = this.opts.prefixAffinity;
    if (aff && typeof prompt === 'string' && prompt.length >= aff) {
      const r = this.prefixes.get(prompt.slice(0, aff));
      if (r !== undefined) {
        const best = Math.min(...this.states.map(score));
        if (score(this.states[r]!) <= best + (this.opts.prefixImbalance ?? 32)) return r;
      }
    }
    let bestI = this.start % n;
    let best = Infinity;
    for (let k = 0; k < n; k++) {
      const i = (this.start + k) % n;
      const sc = score(this.states[i]!);
      if (sc < best) {
        best = sc;
        bestI = i;
      }
    }
    this.start = (this.start + 1) % n;
    return bestI;
  }

  private route(prompt: Prompt): RankState {
    const i = this.pick(prompt);
    const s = this.states[i]!;
    s.sentSinceStats++;
    s.served++;
    if (this.opts.prefixAffinity && typeof prompt === 'string' && prompt.length >= this.opts.prefixAffinity) {
      this.prefixes.set(prompt.slice(0, this.opts.prefixAffinity), i);
    }
    return s;
  }

  /** Spread a batch over the ranks; results in input order. */
  async generate(prompts: Prompt[], params: SamplingParams = {}): Promise<Completion[]> {
    return Promise.all(prompts.map(async (p) => (await this.route(p).engine.generate([p], params))[0]!));
  }

  /** Stream one request from the rank the router picks. */
  stream(prompt: Prompt, params: SamplingParams = {}, options: { signal?: AbortSignal } = {}): AsyncGenerator<StreamDelta, void, undefined> {
    return this.route(prompt).engine.stream(prompt, params, options);
  }

  /** Per-rank load (fresh from each engine) and how many requests each rank was sent. */
  async stats(): Promise<(EngineStats & { rank: number; served: number })[]> {
    return Promise.all(this.states.map(async (s, rank) => ({ ...(await s.engine.stats()), rank, served: s.served })));
  }

  /** Stop every rank and release the placement group. */
  async shutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await Promise.all(this.states.map((s) => s.engine.shutdown()));
    if (this.pg) {
      try {
        removePlacementGroup(this.pg);
      } catch {
        /* removed already */
      }
    }
  }
}
