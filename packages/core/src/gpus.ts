/**
 * The GPUs a node hands out. As Ray records the accelerator ids visible to the process that starts a
 * node, a node started with `CUDA_VISIBLE_DEVICES=4,5` owns devices 4 and 5 only (its tasks get
 * `CUDA_VISIBLE_DEVICES=4` or `5`, never 0); without it, the devices nvidia-smi lists (0..n-1).
 * @internal
 */
import { execFileSync } from 'node:child_process';
import { ValidationError } from './errors.js';

/**
 * The device ids in `CUDA_VISIBLE_DEVICES`, or undefined when it is not set. An empty value (or
 * `-1` / `NoDevFiles`, which CUDA treats as "no device") means no GPU.
 */
export function visibleGpuIds(env: NodeJS.ProcessEnv = process.env): string[] | undefined {
  const v = env['CUDA_VISIBLE_DEVICES'];
  if (v === undefined) return undefined;
  const ids = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (ids.length === 0 || ids[0] === '-1' || ids[0] === 'NoDevFiles') return [];
  return ids;
}

/** GPUs nvidia-smi lists (0 without it). */
export function detectGpuCount(): number {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=index', '--format=csv,noheader'], {
      encoding: 'utf8',
      timeout: 5000,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return out.split('\n').filter((l) => l.trim() !== '').length;
  } catch {
    return 0;
  }
}

/**
 * How many GPUs a node has and their ids. `requested` (numGpus) may be at most the visible count;
 * the node then uses the first `requested` visible ids. Without `CUDA_VISIBLE_DEVICES` the ids are
 * 0..n-1 (undefined: the resource view numbers them).
 * @throws ValidationError when more GPUs are asked for than `CUDA_VISIBLE_DEVICES` lists.
 */
export function resolveNodeGpus(
  requested: number | undefined,
  where: string,
  env: NodeJS.ProcessEnv = process.env,
  detect: () => number = detectGpuCount,
): { numGpus: number; gpuIds: string[] | undefined } {
  const visible = visibleGpuIds(env);
  if (visible === undefined) return { numGpus: requested ?? detect(), gpuIds: undefined };
  const numGpus = requested ?? visible.length;
  if (numGpus > visible.length) {
    throw new ValidationError(
      'numGpus',
      `${where}: numGpus is ${numGpus} but CUDA_VISIBLE_DEVICES=${JSON.stringify(env['CUDA_VISIBLE_DEVICES'])} lists ${visible.length} device(s); a node hands out only the devices visible to it`,
    );
  }
  return { numGpus, gpuIds: visible.slice(0, numGpus) };
}
