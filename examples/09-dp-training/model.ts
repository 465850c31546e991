/**
 * The example's model and data, shared by the rank actors and the single-process reference: a
 * synthetic regression dataset (deterministic: the same seed gives the same samples in every
 * process) and a small MLP (8 → 128 → 128 → 1, tanh) on Float32Array parameters, with its gradient
 * written by hand (no autodiff in TypeScript).
 */

/** Sizes of the model and the dataset. */
export interface Config {
  samples: number;
  inputs: number;
  hidden: number;
  seed: number;
}

export const CONFIG: Config = { samples: 1024, inputs: 8, hidden: 128, seed: 7 };

/** A small deterministic PRNG (mulberry32): the same numbers in every process. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Samples `[from, to)` of the dataset: x uniform in [-1, 1]^inputs, y = sin(x·w) + 0.5·x0·x1 + noise. */
export function dataset(cfg: Config, from = 0, to = cfg.samples): { x: Float32Array; y: Float32Array } {
  const r = rng(cfg.seed);
  const w = Array.from({ length: cfg.inputs }, () => r() * 2 - 1);
  const x = new Float32Array((to - from) * cfg.inputs);
  const y = new Float32Array(to - from);
  for (let s = 0; s < cfg.samples; s++) {
    const xi = Array.from({ length: cfg.inputs }, () => r() * 2 - 1);
    const noise = (r() - 0.5) * 0.05;
    if (s < from || s >= to) continue;
    x.set(xi, (s - from) * cfg.inputs);
    y[s - from] = Math.sin(xi.reduce((acc, v, i) => acc + v * w[i]!, 0)) + 0.5 * xi[0]! * xi[1]! + noise;
  }
  return { x, y };
}

/** Offsets of the layers in the flat parameter vector. */
function layout(cfg: Config) {
  const { inputs: I, hidden: H } = cfg;
  const w1 = 0;
  const b1 = w1 + I * H;
  const w2 = b1 + H;
  const b2 = w2 + H * H;
  const w3 = b2 + H;
  const b3 = w3 + H;
  return { w1, b1, w2, b2, w3, b3, size: b3 + 1 };
}

/** Number of parameters. */
export function paramCount(cfg: Config): number {
  return layout(cfg).size;
}

/** Initial parameters (scaled uniform, deterministic). */
export function initParams(cfg: Config): Float32Array {
  const r = rng(cfg.seed + 1);
  const L = layout(cfg);
  const p = new Float32Array(L.size);
  const fill = (at: number, n: number, fanIn: number) => {
    for (let i = 0; i < n; i++) p[at + i] = (r() * 2 - 1) / Math.sqrt(fanIn);
  };
  fill(L.w1, cfg.inputs * cfg.hidden, cfg.inputs);
  fill(L.w2, cfg.hidden * cfg.hidden, cfg.hidden);
  fill(L.w3, cfg.hidden, cfg.hidden);
  return p;
}

/**
 * The sum over the samples of the squared-error loss's gradient, into `out[0..P)`, and the summed loss
 * into `out[P]` (sums, not means: ranks add them with allreduce and divide by the total sample count).
 * Accumulates in float64, so only the final store rounds to float32.
 */
export function gradientSum(cfg: Config, p: Float32Array, x: Float32Array, y: Float32Array, out: Float32Array): void {
  const { inputs: I, hidden: H } = cfg;
  const L = layout(cfg);
  const g = new Float64Array(L.size + 1);
  const h1 = new Float64Array(H);
  const h2 = new Float64Array(H);
  const d2 = new Float64Array(H);
  const d1 = new Float64Array(H);
  for (let s = 0; s < y.length; s++) {
    const xo = s * I;
    for (let j = 0; j < H; j++) {
      let a = p[L.b1 + j]!;
      for (let i = 0; i < I; i++) a += p[L.w1 + i * H + j]! * x[xo + i]!;
      h1[j] = Math.tanh(a);
    }
    for (let k = 0; k < H; k++) {
      let a = p[L.b2 + k]!;
      for (let j = 0; j < H; j++) a += p[L.w2 + j * H + k]! * h1[j]!;
      h2[k] = Math.tanh(a);
    }
    let out3 = p[L.b3]!;
    for (let k = 0; k < H; k++) out3 += p[L.w3 + k]! * h2[k]!;
    const err = out3 - y[s]!;
    g[L.size] += err * err;
    const dOut = 2 * err;
    g[L.b3] += dOut;
    for (let k = 0; k < H; k++) {
      g[L.w3 + k] += dOut * h2[k]!;
      d2[k] = dOut * p[L.w3 + k]! * (1 - h2[k]! * h2[k]!);
      g[L.b2 + k] += d2[k]!;
    }
    for (let j = 0; j < H; j++) {
      let back = 0;
      for (let k = 0; k < H; k++) {
        g[L.w2 + j * H + k] += h1[j]! * d2[k]!;
        back += p[L.w2 + j * H + k]! * d2[k]!;
      }
      d1[j] = back * (1 - h1[j]! * h1[j]!);
      g[L.b1 + j] += d1[j]!;
    }
    for (let i = 0; i < I; i++) for (let j = 0; j < H; j++) g[L.w1 + i * H + j] += x[xo + i]! * d1[j]!;
  }
  out.set(g);
}

/** One SGD step with the summed gradient of `total` samples. */
export function sgdStep(p: Float32Array, gradSum: Float32Array, total: number, lr: number): void {
  for (let i = 0; i < p.length; i++) p[i] = p[i]! - (lr * gradSum[i]!) / total;
}
