import { describe, expect, it } from 'vitest';
import {
  DoubleReleaseError,
  ForeignAllocationError,
  NodeResources,
  RESOURCE_UNIT,
  ResourceRequest,
  ResourceValidationError,
  fromUnits,
  resourceRequestFromOptions,
  toUnits,
} from '../src/index.js';

const req = (o: Parameters<typeof resourceRequestFromOptions>[0]) => resourceRequestFromOptions(o, { numCpus: 0 });

describe('fixed point', () => {
  it('adds 0.1 + 0.2 exactly', () => {
    expect(RESOURCE_UNIT).toBe(10_000);
    expect(toUnits(0.1) + toUnits(0.2)).toBe(toUnits(0.3));
    expect(fromUnits(toUnits(0.1) + toUnits(0.2))).toBe(0.3);
  });
  it('fits three 0.1 CPU tasks on a 0.3 CPU node, not a fourth', () => {
    const n = new NodeResources({ CPU: 0.3 });
    const r = ResourceRequest.of({ CPU: 0.1 });
    expect([n.allocate(r), n.allocate(r), n.allocate(r)].every((a) => a !== null)).toBe(true);
    expect(n.allocate(r)).toBeNull();
    expect(n.available().get('CPU')).toBe(0);
  });
});

describe('resourceRequestFromOptions', () => {
  it('applies the numCpus default (given, else 1)', () => {
    expect(resourceRequestFromOptions({}, { numCpus: 2 }).get('CPU')).toBe(20_000);
    expect(resourceRequestFromOptions({}).get('CPU')).toBe(10_000);
    expect(resourceRequestFromOptions({ numCpus: 0 }).isEmpty()).toBe(true);
  });
  it('builds every kind of resource', () => {
    const r = resourceRequestFromOptions({ numCpus: 1, numGpus: 0.5, memory: 1e9, resources: { ssd: 2 }, acceleratorType: 'A100' });
    expect(r.toJSON()).toEqual({ CPU: 1, GPU: 0.5, memory: 1e9, ssd: 2, 'accelerator_type:A100': 0.001 });
    expect(r.get('accelerator_type:A100')).toBe(10);
    expect(r.key).toBe('CPU=10000,GPU=5000,accelerator_type:A100=10,memory=10000000000000,ssd=20000');
    expect(resourceRequestFromOptions({ numCpus: 1, numGpus: 0.5 }).key).toBe(ResourceRequest.of({ GPU: 0.5, CPU: 1 }).key);
  });
  it.each([
    [{ numCpus: -1 }, 'numCpus', 'numCpus must be a finite number >= 0, got -1'],
    [{ numCpus: NaN }, 'numCpus', 'numCpus must be a finite number >= 0, got NaN'],
    [{ numCpus: Infinity }, 'numCpus', 'numCpus must be a finite number >= 0, got Infinity'],
    [{ numCpus: '1' }, 'numCpus', "numCpus must be a finite number >= 0, got '1'"],
    [{ numGpus: 1.5 }, 'numGpus', 'numGpus above 1 must be a whole number, got 1.5'],
    [{ memory: -5 }, 'memory', 'memory must be a finite number >= 0, got -5'],
    [{ resources: { CPU: 1 } }, 'resources.CPU', 'resources.CPU is not allowed: use numCpus'],
    [{ resources: { GPU: 1 } }, 'resources.GPU', 'resources.GPU is not allowed: use numGpus'],
    [{ resources: { memory: 1 } }, 'resources.memory', 'resources.memory is not allowed: use memory'],
    [{ resources: { '': 1 } }, 'resources.', "resource names must be non-empty strings, got ''"],
    [{ resources: { x: -1 } }, 'resources.x', 'resources.x must be a finite number >= 0, got -1'],
    [{ resources: 3 }, 'resources', 'resources must be an object of custom resource amounts, got 3'],
    [{ acceleratorType: '' }, 'acceleratorType', "acceleratorType must be a non-empty string, got ''"],
  ])('rejects %j', (opts, option, message) => {
    let err: unknown;
    try {
      resourceRequestFromOptions(opts as never);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ResourceValidationError);
    expect((err as ResourceValidationError).option).toBe(option);
    expect((err as Error).message).toBe(message);
  });
  it('accepts whole GPU counts above 1', () => {
    expect(req({ numGpus: 2 }).get('GPU')).toBe(20_000);
  });
});

describe('NodeResources', () => {
  it('packs fractional GPUs one device before the next (0.5+0.5 -> GPU0, then GPU1)', () => {
    const n = new NodeResources({ CPU: 8, GPU: 2 });
    const half = req({ numGpus: 0.5 });
    expect([1, 2, 3, 4].map(() => n.allocate(half)!.gpuIds)).toEqual([['0'], ['0'], ['1'], ['1']]);
    expect(n.allocate(half)).toBeNull();
  });
  it('puts a fraction on the most used GPU that still fits', () => {
    const n = new NodeResources({ GPU: 3 });
    n.allocate(req({ numGpus: 0.25 })); // GPU0 0.75 free
    n.allocate(req({ numGpus: 1 })); // GPU1
    n.allocate(req({ numGpus: 0.5 })); // GPU0 0.25 free
    expect(n.allocate(req({ numGpus: 0.5 }))!.gpuIds).toEqual(['2']);
    expect(n.allocate(req({ numGpus: 0.25 }))!.gpuIds).toEqual(['0']);
  });
  it('gives whole GPUs lowest free ids first and never a partly used one', () => {
    const n = new NodeResources({ GPU: 4 }, { gpuIds: ['a', 'b', 'c', 'd'] });
    const frac = n.allocate(req({ numGpus: 0.1 }))!;
    expect(frac.gpuIds).toEqual(['a']);
    expect(frac.gpuUnits).toEqual([1000]);
    const two = n.allocate(req({ numGpus: 2 }))!;
    expect(two.gpuIds).toEqual(['b', 'c']);
    expect(n.canFit(req({ numGpus: 2 }))).toBe(false); // 1.9 GPUs free in total, but only one whole GPU
    expect(n.isFeasible(req({ numGpus: 2 }))).toBe(true);
    n.release(two);
    expect(n.allocate(req({ numGpus: 3 }))!.gpuIds).toEqual(['b', 'c', 'd']);
  });
  it('releases exactly, and refuses double or foreign release', () => {
    const n = new NodeResources({ CPU: 4, GPU: 2, memory: 1e9, object_store_memory: 1e8, ssd: 3 }, { labels: { zone: 'a' } });
    const before = n.snapshot();
    const a = n.allocate(resourceRequestFromOptions({ numCpus: 1.5, numGpus: 0.3, memory: 2e8, resources: { ssd: 0.7 } }))!;
    expect(n.snapshot()).not.toEqual(before);
    n.release(a);
    expect(n.snapshot()).toEqual(before);
    expect(() => n.release(a)).toThrow(DoubleReleaseError);
    const other = new NodeResources({ CPU: 4 });
    const b = other.allocate(req({ numCpus: 1 }))!;
    expect(() => n.release(b)).toThrow(ForeignAllocationError);
    expect(() => n.release({ amounts: new Map(), gpuIds: [], gpuUnits: [] })).toThrow(ForeignAllocationError);
  });
  it('names the missing resources of an infeasible request', () => {
    const n = new NodeResources({ CPU: 4, GPU: 1 });
    expect(n.missing(req({ numCpus: 8, numGpus: 2, resources: { custom_x: 1 } }))).toEqual(['CPU', 'GPU', 'custom_x']);
    expect(n.isFeasible(req({ resources: { custom_x: 1 } }))).toBe(false);
    expect(n.missing(req({ numCpus: 4, numGpus: 1 }))).toEqual([]);
  });
  it("computes Ray's critical utilization over CPU, memory and object store", () => {
    const n = new NodeResources({ CPU: 4, GPU: 4, memory: 100, object_store_memory: 100 });
    expect(n.utilization()).toBe(0);
    n.allocate(req({ numCpus: 1, numGpus: 4, memory: 60 }));
    expect(n.utilization()).toBeCloseTo(0.6);
    expect(n.scoreAfter(req({ numCpus: 3 }))).toBe(1);
  });
  it('rejects bad totals', () => {
    expect(() => new NodeResources({ GPU: 1.5 })).toThrow(/total.GPU .*whole number/);
    expect(() => new NodeResources({ GPU: 0.5 })).toThrow(/total.GPU must be a whole number of GPUs, got 0.5/);
    expect(() => new NodeResources({ CPU: -1 })).toThrow(ResourceValidationError);
    expect(() => new NodeResources({ GPU: 2 }, { gpuIds: ['0'] })).toThrow(/gpuIds must be 2 distinct/);
    expect(() => new NodeResources({ GPU: 2 }, { gpuIds: ['0', '0'] })).toThrow(/gpuIds/);
  });
  it('builds a node view from an allocation (a bundle)', () => {
    const n = new NodeResources({ CPU: 8, GPU: 4 });
    n.allocate(req({ numGpus: 1 }));
    const a = n.allocate(req({ numCpus: 2, numGpus: 2 }))!;
    const b = NodeResources.fromAllocation(a);
    expect(b.toJSON()).toMatchObject({ total: { CPU: 2, GPU: 2 }, gpus: { '1': 1, '2': 1 } });
    expect(b.allocate(req({ numCpus: 1, numGpus: 1 }))!.gpuIds).toEqual(['1']);
    expect(b.canFit(req({ numGpus: 2 }))).toBe(false);
    const h = NodeResources.fromAllocation(n.allocate(req({ numGpus: 0.5 }))!);
    expect(h.canFit(req({ numGpus: 0.5 }))).toBe(true);
    expect(h.isFeasible(req({ numGpus: 1 }))).toBe(false);
  });
  it('clones and freshens without sharing state', () => {
    const n = new NodeResources({ CPU: 2, GPU: 1 });
    n.allocate(req({ numCpus: 1, numGpus: 0.5 }));
    const c = n.clone();
    c.allocate(req({ numCpus: 1, numGpus: 0.5 }));
    expect(n.snapshot()).toEqual({ available: { CPU: 10_000, GPU: 5000 }, gpuFree: { '0': 5000 } });
    expect(n.fresh().snapshot()).toEqual({ available: { CPU: 20_000, GPU: 10_000 }, gpuFree: { '0': 10_000 } });
  });
});
