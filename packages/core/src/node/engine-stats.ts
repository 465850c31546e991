/**
 * A node's table of LLM engine load (issue #20, the dashboard's LLM-engines page): every engine actor
 * (`tsray.engine.actor:EngineActor`, one per engine or data-parallel rank) sends its stats to its node
 * about once a second as a state call `engine:<JSON of EngineReport>`; the head gathers the tables of
 * every node (`stateSnapshot{what:'engines'}`). An engine that stopped reporting (dead, shut down)
 * drops out after {@link ENGINE_STALE_MS}; at most {@link MAX_ENGINES} are kept per node.
 * @internal
 */
import { ValidationError } from '../errors.js';

/** Prefix of the state call an engine actor reports its stats with. */
export const ENGINE_CALL_PREFIX = 'engine:';
/** Engines kept per node (the oldest report is dropped beyond). */
export const MAX_ENGINES = 256;
/** A report older than this is no longer listed (the engine stopped reporting), in ms. */
export const ENGINE_STALE_MS = 10_000;

/** What an engine actor sends (numbers may be null while unknown, e.g. no request finished yet). */
export interface EngineReport {
  /** The engine's actor id. */
  actorId: string;
  /** The actor's name ('' when unnamed). */
  name: string;
  model: string;
  backend: string;
  /** Data-parallel rank (0 for a single engine). */
  rank: number;
  pid: number;
  /** GPUs the engine shards its model over (vLLM's tensor-parallel size; 1 for transformers). */
  tensorParallelSize: number;
  /** GPU ids the engine's process sees (its CUDA_VISIBLE_DEVICES). */
  gpuIds: (number | string)[];
  running: number;
  waiting: number;
  /** KV-cache use in [0, 1]. */
  kvCacheUsage: number;
  /** Generated tokens per second over the last few seconds. */
  tokensPerS: number;
  /** Time to first token of recent requests, ms. */
  ttftP50Ms: number | null;
  ttftP99Ms: number | null;
  /** Requests finished since the engine started. */
  requestsFinished: number;
}

/** One engine as the state API lists it (`localState('engines')`, the dashboard's engines list). */
export interface EngineRow extends EngineReport {
  nodeId: string;
  /** When the node received the report, ms since the epoch. */
  reportedAt: number;
}

const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const numOrNull = (v: unknown): v is number | null => v === null || num(v);

/** Check an engine report (a malformed one is a ValidationError naming the field). */
function checkReport(json: string): EngineReport {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(json) as Record<string, unknown>;
  } catch (e) {
    throw new ValidationError('engine', `engine report is not JSON: ${(e as Error).message}`);
  }
  if (typeof r !== 'object' || r === null) throw new ValidationError('engine', 'engine report must be a JSON object');
  const checks: [string, (v: unknown) => boolean][] = [
    ['actorId', (v) => typeof v === 'string' && v.length > 0],
    ['name', (v) => typeof v === 'string'],
    ['model', (v) => typeof v === 'string'],
    ['backend', (v) => typeof v === 'string'],
    ['rank', num],
    ['pid', num],
    ['tensorParallelSize', num],
    ['gpuIds', (v) => Array.isArray(v) && v.every((x) => num(x) || typeof x === 'string')],
    ['running', num],
    ['waiting', num],
    ['kvCacheUsage', num],
    ['tokensPerS', num],
    ['ttftP50Ms', numOrNull],
    ['ttftP99Ms', numOrNull],
    ['requestsFinished', num],
  ];
  for (const [k, ok] of checks)
    if (!ok(r[k])) throw new ValidationError(`engine.${k}`, `engine report: ${k} is missing or has the wrong type (got ${JSON.stringify(r[k])})`);
  return r as unknown as EngineReport;
}

/** The latest report of each engine on this node. */
export class EngineStatsTable {
  private readonly rows = new Map<string, EngineRow>();

  constructor(
    private readonly nodeId: () => string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Record one report (JSON of {@link EngineReport}); a malformed one throws ValidationError. */
  record(json: string): void {
    const r = checkReport(json);
    this.rows.delete(r.actorId); // re-inserted last: the map stays ordered oldest report first
    if (this.rows.size >= MAX_ENGINES) this.rows.delete(this.rows.keys().next().value as string);
    this.rows.set(r.actorId, { ...r, nodeId: this.nodeId(), reportedAt: this.now() });
  }

  /** Engines that reported within {@link ENGINE_STALE_MS}. */
  list(): EngineRow[] {
    const cutoff = this.now() - ENGINE_STALE_MS;
    for (const [id, r] of this.rows) if (r.reportedAt < cutoff) this.rows.delete(id);
    return [...this.rows.values()];
  }
}
