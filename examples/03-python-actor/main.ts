/**
 * Python from TypeScript: a Python actor (typed by a declared interface) and a Python function that
 * takes and returns numeric arrays (TypedArray <-> numpy).
 *
 * Run: PYTHONPATH=examples/03-python-actor npx tsx examples/03-python-actor/main.ts
 */
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { get, init, isMain, python, shutdown } from '@tsray/core';

/** The Python class's interface, as TypeScript sees it. */
interface WordStats {
  add(text: string): number;
  top(n: number): [string, number][];
  slow_len(text: string): number;
}

if (isMain(import.meta)) {
  process.env['PYTHONPATH'] = [dirname(fileURLToPath(import.meta.url)), process.env['PYTHONPATH']].filter(Boolean).join(':');
  await init();
  const Stats = python.actor<WordStats>('word_stats:WordStats');
  const stats = Stats.remote('en');
  await get([stats.add.remote('the quick brown fox'), stats.add.remote('the lazy dog and the fox')]);
  console.log('top words:', JSON.stringify(await get(stats.top.remote(2))));
  const lens = await get(['a', 'bb', 'ccc'].map((t) => stats.slow_len.remote(t)));
  console.log('lengths:', lens.join(','));
  const normalize = python.remote<[Float64Array], Float64Array>('word_stats:normalize');
  const z = await get(normalize.remote(new Float64Array([1, 2, 3])));
  console.log('normalized:', [...z].map((x) => x.toFixed(3)).join(' '));
  await shutdown();
}
