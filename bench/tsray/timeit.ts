/**
 * Port of Ray's `timeit` (`python/ray/_private/ray_microbenchmark_helpers.py`, Ray 2.58.0) so both
 * sides of the benchmark time their workloads the same way.
 *
 * Algorithm (unchanged from Ray): sleep `sleepSec` (Ray: 10 s, "to avoid noisy neighbors"), then run
 * `fn` back to back for `warmupSec` (1 s) counting calls; `step = floor(count / 10) + 1`; then
 * `trials` (4) trials, each running `fn` in blocks of `step` calls until `trialSec` (2 s) have passed
 * (checked only between blocks) and recording `multiplier * calls / elapsed`. The result is the mean
 * and the population standard deviation (numpy's `np.std`, ddof = 0) of the trial rates.
 *
 * `fn` may be synchronous or return a promise; a promise is awaited before the next call, a plain
 * return value is not (no extra microtask per call for synchronous workloads such as `put`).
 */

/** Phases of one timeit run. */
export interface TimeitOptions {
  /** Idle sleep before the warm-up, seconds. */
  sleepSec: number;
  /** Warm-up duration, seconds. */
  warmupSec: number;
  /** Number of measured trials. */
  trials: number;
  /** Duration of one trial, seconds. */
  trialSec: number;
}

/** Ray's own phases: 10 s sleep, 1 s warm-up, 4 trials of 2 s. */
export const RAY_TIMEIT: Readonly<TimeitOptions> = Object.freeze({
  sleepSec: 10,
  warmupSec: 1,
  trials: 4,
  trialSec: 2,
});

/** Shorter phases for `--quick` (keep in sync with QUICK_TIMEIT in bench/ray/bench_harness.py). */
export const QUICK_TIMEIT: Readonly<TimeitOptions> = Object.freeze({
  sleepSec: 1,
  warmupSec: 0.5,
  trials: 3,
  trialSec: 1,
});

/** Mean and population standard deviation of `multiplier * calls / s` over the trials. */
export interface TimeitResult {
  mean: number;
  std: number;
  /** The per-trial rates. */
  trials: number[];
}

/** A workload: one call of it is one unit of `multiplier` work. */
export type Workload = () => unknown;

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';
}

const nowSec = (): number => performance.now() / 1000;
const sleep = (sec: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, sec * 1000));

/**
 * Times `fn` with Ray's timeit algorithm.
 *
 * @param fn - the workload; awaited when it returns a promise.
 * @param multiplier - units of work per call (e.g. 1000 for a batch of 1000 tasks).
 * @param opts - the phases; {@link RAY_TIMEIT} by default.
 */
export async function timeit(fn: Workload, multiplier = 1, opts: Readonly<TimeitOptions> = RAY_TIMEIT): Promise<TimeitResult> {
  await sleep(opts.sleepSec);
  // warm-up
  let start = nowSec();
  let count = 0;
  while (nowSec() - start < opts.warmupSec) {
    const r = fn();
    if (isThenable(r)) await r;
    count += 1;
  }
  // real run
  const step = Math.floor(count / 10) + 1;
  const stats: number[] = [];
  for (let t = 0; t < opts.trials; t++) {
    start = nowSec();
    count = 0;
    while (nowSec() - start < opts.trialSec) {
      for (let i = 0; i < step; i++) {
        const r = fn();
        if (isThenable(r)) await r;
      }
      count += step;
    }
    const end = nowSec();
    stats.push((multiplier * count) / (end - start));
  }
  const mean = stats.reduce((a, b) => a + b, 0) / stats.length;
  const variance = stats.reduce((a, b) => a + (b - mean) ** 2, 0) / stats.length;
  return { mean, std: Math.sqrt(variance), trials: stats };
}
