/**
 * GPU ids of a node come from its CUDA_VISIBLE_DEVICES when set (as Ray records the visible
 * accelerator ids), else from the device count: a driver started with CUDA_VISIBLE_DEVICES=4,5 hands
 * out devices 4 and 5 only.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '@tsray/core';
import { resolveNodeGpus, visibleGpuIds } from '@tsray/core/internal';

const run = promisify(execFile);
const DRIVER = fileURLToPath(new URL('./fixtures/driver-visible-gpus.ts', import.meta.url));

describe('GPU ids of a node', () => {
  it('reads CUDA_VISIBLE_DEVICES: ids, empty, and CUDA\'s "no device" values', () => {
    expect(visibleGpuIds({})).toBeUndefined();
    expect(visibleGpuIds({ CUDA_VISIBLE_DEVICES: '4,5' })).toEqual(['4', '5']);
    expect(visibleGpuIds({ CUDA_VISIBLE_DEVICES: ' 2 , 7 ' })).toEqual(['2', '7']);
    expect(visibleGpuIds({ CUDA_VISIBLE_DEVICES: '' })).toEqual([]);
    expect(visibleGpuIds({ CUDA_VISIBLE_DEVICES: '-1' })).toEqual([]);
    expect(visibleGpuIds({ CUDA_VISIBLE_DEVICES: 'NoDevFiles' })).toEqual([]);
  });

  it('counts the visible devices, takes the first numGpus of them, and refuses more than are visible', () => {
    const noSmi = () => 0;
    expect(resolveNodeGpus(undefined, 'init()', { CUDA_VISIBLE_DEVICES: '4,5' }, noSmi)).toEqual({ numGpus: 2, gpuIds: ['4', '5'] });
    expect(resolveNodeGpus(1, 'init()', { CUDA_VISIBLE_DEVICES: '4,5' }, noSmi)).toEqual({ numGpus: 1, gpuIds: ['4'] });
    expect(resolveNodeGpus(undefined, 'init()', {}, () => 3)).toEqual({ numGpus: 3, gpuIds: undefined });
    expect(resolveNodeGpus(2, 'init()', {}, noSmi)).toEqual({ numGpus: 2, gpuIds: undefined });
    expect(() => resolveNodeGpus(3, 'init()', { CUDA_VISIBLE_DEVICES: '4,5' }, noSmi)).toThrow(ValidationError);
    expect(() => resolveNodeGpus(3, 'init()', { CUDA_VISIBLE_DEVICES: '4,5' }, noSmi)).toThrow(/numGpus is 3 but CUDA_VISIBLE_DEVICES="4,5" lists 2 device/);
  });

  it('a driver started with CUDA_VISIBLE_DEVICES=4,5 hands out devices 4 and 5 only', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', DRIVER], { env: { ...process.env, CUDA_VISIBLE_DEVICES: '4,5' }, timeout: 60_000 });
    const out = JSON.parse(stdout.trim().split('\n').pop()!) as { gpus: number; devices: string[] };
    expect(out).toEqual({ gpus: 2, devices: ['4', '5'] });
  }, 90_000);
});
