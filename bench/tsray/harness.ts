/**
 * Metric registry, CLI and JSON-line output for the tsray side of the benchmarks; the twin of
 * bench/ray/bench_harness.py.
 *
 * A metric is one registered function that sets up its workload (as Ray's `ray_perf.py` does) and
 * returns `t(fn, multiplier)`. Metrics run in registration order, grouped by session: each session is
 * one `init(options)` … `shutdown()` around its metrics, or no runtime at all (`init: null`, for
 * local references such as memcpy). Output is one JSON line per metric on stdout:
 * `{"system":"tsray","metric":…,"value":…,"std":…,"unit":"ops/s"|"GB/s"}` after one `"kind":"meta"`
 * line; progress goes to stderr.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import { init, shutdown } from '@tsray/core';
import { QUICK_TIMEIT, RAY_TIMEIT, timeit, type TimeitOptions, type TimeitResult, type Workload } from './timeit.js';

/** Options of tsray's `init()`, as the core package declares them. */
export type InitOptions = NonNullable<Parameters<typeof init>[0]>;

/** Unit of a metric's value. */
export type Unit = 'ops/s' | 'GB/s';

/** The timing function a metric receives: Ray's timeit with the run's phases bound. */
export type TimeFn = (fn: Workload, multiplier?: number) => Promise<TimeitResult>;

/** One benchmark metric. */
export interface Metric {
  name: string;
  unit: Unit;
  session: string;
  note?: string;
  run: (t: TimeFn) => Promise<TimeitResult>;
}

/** Registration options of a metric. */
export interface MetricOptions {
  /** Default `'ops/s'`. */
  unit?: Unit;
  /** Session name (see {@link Registry.session}); default `'default'`. */
  session?: string;
  /** Shown in the JSON line, e.g. when the metric is not one of Ray's. */
  note?: string;
}

/** Ordered set of metrics and the sessions they run under. */
export class Registry {
  readonly metrics = new Map<string, Metric>();
  /** Session name → init options (`null`: no tsray runtime). Runs in insertion order. */
  readonly sessions = new Map<string, InitOptions | null>([['default', {}]]);

  /** Registers `run` as metric `name`. */
  metric(name: string, opts: MetricOptions, run: (t: TimeFn) => Promise<TimeitResult>): void {
    if (this.metrics.has(name)) throw new Error(`metric ${name} registered twice`);
    this.metrics.set(name, {
      name,
      unit: opts.unit ?? 'ops/s',
      session: opts.session ?? 'default',
      ...(opts.note === undefined ? {} : { note: opts.note }),
      run,
    });
  }

  /** Declares a session: `init(options)` around its metrics, or no runtime when `options` is null. */
  session(name: string, options: InitOptions | null): void {
    this.sessions.set(name, options);
  }
}

interface Args {
  metrics: string[];
  quick: boolean;
  list: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { metrics: [], quick: false, list: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') args.quick = true;
    else if (a === '--list') args.list = true;
    else if (a === '--metrics' || a.startsWith('--metrics=')) {
      const v = a === '--metrics' ? argv[++i] : a.slice('--metrics='.length);
      if (v === undefined) throw new Error('--metrics needs a comma-separated list');
      args.metrics.push(
        ...v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      );
    } else if (a === '-h' || a === '--help') {
      process.stderr.write('usage: npx tsx bench/tsray/<file>.bench.ts [--quick] [--metrics a,b,c] [--list]\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

function emit(obj: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function coreVersion(): string {
  try {
    const req = createRequire(import.meta.url);
    return (req('@tsray/core/package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/**
 * Runs the selected metrics of `registry` and writes their JSON lines. Returns the exit code:
 * 0 when every metric produced a value, 1 when one failed (its line carries `error`), 2 on bad usage.
 */
export async function runBenchmarks(registry: Registry, argv: string[]): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }
  if (args.list) {
    for (const name of registry.metrics.keys()) process.stdout.write(`${name}\n`);
    return 0;
  }
  const unknown = args.metrics.filter((m) => !registry.metrics.has(m));
  if (unknown.length > 0) {
    process.stderr.write(`unknown metric(s): ${unknown.join(', ')}; known: ${[...registry.metrics.keys()].join(', ')}\n`);
    return 2;
  }
  const selected = [...registry.metrics.values()].filter((m) => args.metrics.length === 0 || args.metrics.includes(m.name));
  const phases: Readonly<TimeitOptions> = args.quick ? QUICK_TIMEIT : RAY_TIMEIT;
  emit({
    system: 'tsray',
    kind: 'meta',
    version: coreVersion(),
    node: process.version,
    time: new Date().toISOString().slice(0, 19) + 'Z',
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
    timeit: phases,
    quick: args.quick,
    pid: process.pid,
  });
  const t: TimeFn = (fn, multiplier = 1) => timeit(fn, multiplier, phases);
  let failed = 0;
  for (const [session, options] of registry.sessions) {
    const group = selected.filter((m) => m.session === session);
    if (group.length === 0) continue;
    if (options !== null) await init(options);
    try {
      for (const m of group) {
        process.stderr.write(`[tsray] ${m.name} ...\n`);
        try {
          const r = await m.run(t);
          process.stderr.write(`[tsray] ${m.name} ${r.mean.toFixed(2)} +- ${r.std.toFixed(2)} ${m.unit}\n`);
          emit({
            system: 'tsray',
            metric: m.name,
            value: r.mean,
            std: r.std,
            unit: m.unit,
            ...(m.note === undefined ? {} : { note: m.note }),
          });
        } catch (e) {
          failed++;
          const err = e as Error;
          process.stderr.write(`[tsray] ${m.name} failed: ${err.stack ?? String(err)}\n`);
          emit({ system: 'tsray', metric: m.name, error: `${err.name}: ${err.message}`, unit: m.unit });
        }
      }
    } finally {
      if (options !== null) await shutdown();
    }
  }
  return failed > 0 ? 1 : 0;
}

/**
 * Entry point for a `*.bench.ts` file: runs {@link runBenchmarks} on the process arguments, sets the
 * exit code, and force-exits if something keeps the event loop alive 10 s after `shutdown()`.
 */
export async function benchMain(registry: Registry): Promise<void> {
  process.exitCode = await runBenchmarks(registry, process.argv.slice(2));
  setTimeout(() => {
    process.stderr.write('[tsray] event loop still busy 10 s after shutdown(); exiting\n');
    process.exit(process.exitCode ?? 1);
  }, 10_000).unref();
}
