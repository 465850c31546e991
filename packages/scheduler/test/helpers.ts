import { ClusterView, type NodeResources } from '../src/index.js';

/** Seeded PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A cluster of `n` nodes named n000.. built by `make(i)`. */
export function cluster(n: number, make: (i: number) => NodeResources): ClusterView {
  const v = new ClusterView();
  for (let i = 0; i < n; i++) v.addNode(`n${String(i).padStart(4, '0')}`, make(i));
  return v;
}
