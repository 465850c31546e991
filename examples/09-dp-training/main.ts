/**
 * The seed's data-parallel training: 4 ranks (actors), each with a slice of a synthetic regression
 * dataset, the same small model, and the gradients all-reduced every step through the object store
 * (`@tsray/collective`), so every rank takes the same step. The loss curve equals one process training
 * on all the data (to float tolerance), which this script prints side by side.
 *
 * `--python`: the same training with Python ranks (torch CPU, `trainer.py`), checked against torch
 * training on all the data in one process.
 *
 * Run: npx tsx examples/09-dp-training/main.ts [--steps 20] [--python]
 */
import { fileURLToPath } from 'node:url';
import { actor, get, init, isMain, python, shutdown } from '@tsray/core';
import { allreduce, createGroup } from '@tsray/collective';
import { CONFIG, dataset, gradientSum, initParams, paramCount, sgdStep, type Config } from './model.js';

const LR = 0.05;

/** One rank: its slice of the data and a replica of the model. */
export class Trainer {
  private readonly x: Float32Array;
  private readonly y: Float32Array;
  private readonly params: Float32Array;

  constructor(
    rank: number,
    world: number,
    private readonly cfg: Config = CONFIG,
  ) {
    const per = cfg.samples / world;
    ({ x: this.x, y: this.y } = dataset(cfg, rank * per, (rank + 1) * per));
    this.params = initParams(cfg);
  }

  /** `steps` SGD steps; returns the loss (mean over all the data) before each step. */
  async train(steps: number, group?: string): Promise<number[]> {
    const P = paramCount(this.cfg);
    const buf = new Float32Array(P + 1); // gradient sums, then the loss sum: one allreduce per step
    const losses: number[] = [];
    for (let s = 0; s < steps; s++) {
      gradientSum(this.cfg, this.params, this.x, this.y, buf);
      if (group) await allreduce(buf, { group, op: 'sum' });
      losses.push(buf[P]! / this.cfg.samples);
      sgdStep(this.params, buf, this.cfg.samples, LR);
    }
    return losses;
  }
}
export const RemoteTrainer = actor(Trainer);

/** Largest relative difference between two curves. */
export function maxRelDiff(a: number[], b: number[]): number {
  return Math.max(...a.map((v, i) => Math.abs(v - b[i]!) / Math.abs(b[i]!)));
}

if (isMain(import.meta)) {
  const steps = Number(process.argv[process.argv.indexOf('--steps') + 1] || 20) || 20;
  const usePython = process.argv.includes('--python');
  const here = fileURLToPath(new URL('.', import.meta.url));
  if (usePython) process.env['PYTHONPATH'] = [here, process.env['PYTHONPATH']].filter(Boolean).join(':');
  await init({ numCpus: 4 });
  const world = 4;
  let dp: number[];
  let single: number[];
  if (usePython) {
    const PyTrainer = python.actor<{ train(steps: number, group: string): number[] }>('trainer:Trainer', { numCpus: 0 });
    const ranks = Array.from({ length: world }, (_, r) => PyTrainer.remote(r, world));
    await createGroup(ranks, { name: 'dp' });
    const curves = await get(ranks.map((r) => r.train.remote(steps, 'dp')));
    dp = curves[0]!;
    single = await get(python.remote<[number], number[]>('trainer:train_single').remote(steps));
  } else {
    const ranks = Array.from({ length: world }, (_, r) => RemoteTrainer.options({ numCpus: 0 }).remote(r, world));
    await createGroup(ranks, { name: 'dp' });
    const curves = await get(ranks.map((r) => r.train.remote(steps, 'dp')));
    dp = curves[0]!;
    single = await new Trainer(0, 1).train(steps);
  }
  console.log(`step  loss (${world} ranks, allreduce)  loss (one process)`);
  for (const [i, l] of dp.entries()) console.log(`${String(i).padStart(4)}  ${l.toFixed(7).padStart(26)}  ${single[i]!.toFixed(7).padStart(18)}`);
  console.log(`max relative difference: ${maxRelDiff(dp, single).toExponential(2)}`);
  await shutdown();
}
