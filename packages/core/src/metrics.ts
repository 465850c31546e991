/**
 * Application metrics, as Ray's `ray.util.metrics`: `Counter`, `Gauge` and `Histogram`, usable in
 * drivers, tasks and actors. Each update goes to the process's node (fire and forget, in order with
 * the task's result); the head exports them on `/metrics` as `ray_<name>` with their tags.
 *
 * ```ts
 * const done = new Counter('items_done', { description: 'items processed', tagKeys: ['stage'] });
 * done.inc(1, { stage: 'parse' });
 * ```
 * @module
 */
import { ValidationError } from './errors.js';
import { logger } from './logger.js';
import { METRIC_CALL_PREFIX, type MetricUpdate } from './node/user-metrics.js';
import { state } from './state.js';
import { MAX_NAME_CHARS } from './cluster/control-plane.js';

/** Options of a metric (as Ray's `description`, `tag_keys`). */
export interface MetricOptions {
  /** HELP text on `/metrics`. */
  description?: string;
  /** Tag names every update may set (others are refused). */
  tagKeys?: readonly string[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const TAG = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** What Counter, Gauge and Histogram share: name and tag checks, default tags, sending. */
abstract class Metric {
  private defaults: Record<string, string> = {};
  readonly description: string;
  readonly tagKeys: readonly string[];

  constructor(
    readonly name: string,
    private readonly kind: MetricUpdate['k'],
    opts: MetricOptions = {},
  ) {
    if (typeof name !== 'string' || !NAME.test(name))
      throw new ValidationError('name', `metric name must match ${NAME} (a Prometheus name), got ${JSON.stringify(name)}`);
    this.description = opts.description ?? '';
    this.tagKeys = opts.tagKeys ?? [];
    for (const k of this.tagKeys) if (!TAG.test(k)) throw new ValidationError('tagKeys', `metric ${name}: tag key ${JSON.stringify(k)} must match ${TAG}`);
  }

  /** Tags applied to every update that does not set them (as Ray's `set_default_tags`). */
  setDefaultTags(tags: Record<string, string>): this {
    this.defaults = { ...this.checkTags(tags) };
    return this;
  }

  private checkTags(tags: Record<string, string>): Record<string, string> {
    for (const [k, v] of Object.entries(tags)) {
      if (!this.tagKeys.includes(k))
        throw new ValidationError(`tags.${k}`, `metric ${this.name}: tag "${k}" is not one of its tagKeys (${this.tagKeys.join(', ') || 'none'})`);
      if (typeof v !== 'string') throw new ValidationError(`tags.${k}`, `metric ${this.name}: tag "${k}" must be a string, got ${typeof v}`);
    }
    return tags;
  }

  protected send(value: number, tags: Record<string, string> | undefined, boundaries?: number[]): void {
    if (typeof value !== 'number' || !Number.isFinite(value))
      throw new ValidationError('value', `metric ${this.name}: value must be a finite number, got ${String(value)}`);
    const t = { ...this.defaults, ...this.checkTags(tags ?? {}) };
    const update: MetricUpdate = { n: this.name, k: this.kind, d: this.description, t, v: value, ...(boundaries ? { b: boundaries } : {}) };
    const call = METRIC_CALL_PREFIX + JSON.stringify(update);
    if (call.length > MAX_NAME_CHARS)
      throw new ValidationError(
        'tags',
        `metric ${this.name}: the update is ${call.length} characters; name, description and tags must fit in ${MAX_NAME_CHARS}`,
      );
    const rt = state().runtime as unknown as { stateCall?: (m: string) => Promise<unknown> } | undefined;
    // Without a running tsray there is nowhere to record: dropped, as Ray drops metrics before init.
    if (!rt?.stateCall) return;
    rt.stateCall(call).catch((err: unknown) => logger().warn({ err, metric: this.name }, 'a metric update was not recorded'));
  }
}

/** A cumulative count (Ray's `Counter`): `inc()` adds. Exported as `ray_<name>_total`. */
export class Counter extends Metric {
  constructor(name: string, opts: MetricOptions = {}) {
    super(name, 'counter', opts);
  }
  /** Add `value` (> 0, default 1). */
  inc(value = 1, tags?: Record<string, string>): void {
    if (!(value > 0)) throw new ValidationError('value', `Counter ${this.name}: inc() takes a value > 0, got ${String(value)}`);
    this.send(value, tags);
  }
}

/** A value that goes up and down (Ray's `Gauge`): `set()` replaces. */
export class Gauge extends Metric {
  constructor(name: string, opts: MetricOptions = {}) {
    super(name, 'gauge', opts);
  }
  /** Set the value. */
  set(value: number, tags?: Record<string, string>): void {
    this.send(value, tags);
  }
}

/** A distribution over fixed buckets (Ray's `Histogram`, `boundaries` ascending): `observe()` adds one. */
export class Histogram extends Metric {
  readonly boundaries: number[];
  constructor(name: string, opts: MetricOptions & { boundaries: readonly number[] }) {
    super(name, 'histogram', opts);
    const b = [...(opts?.boundaries ?? [])];
    if (b.length === 0 || b.some((x, i) => !Number.isFinite(x) || (i > 0 && x <= b[i - 1]!)))
      throw new ValidationError('boundaries', `Histogram ${name}: boundaries must be finite, ascending and non-empty, got ${JSON.stringify(opts?.boundaries)}`);
    this.boundaries = b;
  }
  /** Record one observation. */
  observe(value: number, tags?: Record<string, string>): void {
    this.send(value, tags, this.boundaries);
  }
}
