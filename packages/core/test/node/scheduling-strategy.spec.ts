/**
 * The one scheduling-strategy type: validation at the API edge (ValidationError naming the field) and
 * the wire codec (user API -> protobuf bytes -> the same strategy), without a node.
 */
import { tsray } from '@tsray/protocol';
import { labelDoesNotExist, labelExists, labelIn, labelNotIn } from '@tsray/scheduler';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { resolveScheduling, type SchedulingStrategy } from '../../src/scheduling-strategy.js';
import { schedulingFromWire, schedulingToWire } from '../../src/node/task-codec.js';

const where = 'f.options()';

/** The option named by the ValidationError `fn` throws. */
function badField(s: unknown): string {
  try {
    resolveScheduling(s as SchedulingStrategy, where);
  } catch (e) {
    expect(e).toBeInstanceOf(ValidationError);
    expect((e as Error).message).toContain(where);
    return (e as ValidationError).option;
  }
  throw new Error(`${JSON.stringify(s)} was accepted`);
}

/** Through the codec and real protobuf bytes. */
function roundTrip(s: SchedulingStrategy) {
  const resolved = resolveScheduling(s, where)!;
  const bytes = tsray.v1.SchedulingStrategy.encode(schedulingToWire(resolved)).finish();
  return { resolved, back: schedulingFromWire(tsray.v1.SchedulingStrategy.decode(bytes)) };
}

describe('schedulingStrategy validation', () => {
  it('names the bad field of a node-label selector', () => {
    expect(badField({ type: 'NODE_LABEL', hard: [{ key: 'zone', op: 'near', values: ['a'] }] })).toBe('schedulingStrategy.hard[0]');
    expect(badField({ type: 'NODE_LABEL', soft: [labelExists('gpu'), { key: 'zone', op: 'in', values: [] }] })).toBe('schedulingStrategy.soft[1]');
    expect(badField({ type: 'NODE_LABEL', hard: [{ key: '', op: 'exists' }] })).toBe('schedulingStrategy.hard[0]');
    expect(badField({ type: 'NODE_LABEL', hard: { zone: 'a' } })).toBe('schedulingStrategy.hard');
    expect(badField({ type: 'NODE_LABEL', hardd: [] })).toBe('schedulingStrategy.hardd');
  });

  it('names the bad field of the other strategies', () => {
    expect(badField('SIDEWAYS')).toBe('schedulingStrategy');
    expect(badField({ type: 'NEAREST' })).toBe('schedulingStrategy.type');
    expect(badField({ type: 'NODE_AFFINITY', nodeId: '' })).toBe('schedulingStrategy.nodeId');
    expect(badField({ type: 'NODE_AFFINITY', nodeId: 'n1', soft: 'yes' })).toBe('schedulingStrategy.soft');
    expect(badField({ type: 'PLACEMENT_GROUP', placementGroup: null })).toBe('schedulingStrategy.placementGroup');
    expect(badField({ type: 'PLACEMENT_GROUP', placementGroup: { id: 'pg1', bundles: [{}] }, bundleIndex: 1 })).toBe('schedulingStrategy.bundleIndex');
    expect(badField({ type: 'PLACEMENT_GROUP', placementGroupId: 'pg1', bundleIndex: 0.5 })).toBe('schedulingStrategy.bundleIndex');
  });

  it('accepts the string shorthands and fills in defaults', () => {
    expect(resolveScheduling('DEFAULT', where)).toBeUndefined();
    expect(resolveScheduling({ type: 'DEFAULT' }, where)).toBeUndefined();
    expect(resolveScheduling('SPREAD', where)).toEqual({ type: 'SPREAD' });
    expect(resolveScheduling({ type: 'NODE_AFFINITY', nodeId: 'n1' }, where)).toEqual({ type: 'NODE_AFFINITY', nodeId: 'n1', soft: false });
    expect(resolveScheduling({ type: 'PLACEMENT_GROUP', placementGroup: { id: 'pg1' } }, where)).toEqual({
      type: 'PLACEMENT_GROUP',
      placementGroupId: 'pg1',
      bundleIndex: -1,
      captureChildTasks: false,
    });
    expect(resolveScheduling({ type: 'NODE_LABEL', hard: [labelIn('zone', 'a')] }, where)).toEqual({
      type: 'NODE_LABEL',
      hard: [{ key: 'zone', op: 'in', values: ['a'] }],
      soft: [],
    });
  });
});

describe('scheduling strategy wire codec', () => {
  it.each<[string, SchedulingStrategy]>([
    ['SPREAD', 'SPREAD'],
    ['PLACEMENT_GROUP', { type: 'PLACEMENT_GROUP', placementGroup: { id: 'pg-ü' }, bundleIndex: 2, captureChildTasks: true }],
    ['NODE_AFFINITY', { type: 'NODE_AFFINITY', nodeId: 'node-Ω', soft: true, spillOnUnavailable: true }],
    ['NODE_AFFINITY fail', { type: 'NODE_AFFINITY', nodeId: 'n', failOnUnavailable: true }],
    [
      'NODE_LABEL',
      { type: 'NODE_LABEL', hard: [labelIn('zone', 'a', 'b'), labelNotIn('tier', 'spot'), labelExists('gpu')], soft: [labelDoesNotExist('busy')] },
    ],
  ])('%s comes back as it went', (_name, s) => {
    const { resolved, back } = roundTrip(s);
    expect(back).toEqual(resolved);
  });

  it('rejects a malformed strategy from the wire (a peer or another language may send anything)', () => {
    const decode = (w: tsray.v1.ISchedulingStrategy) => () =>
      schedulingFromWire(tsray.v1.SchedulingStrategy.decode(tsray.v1.SchedulingStrategy.encode(w).finish()));
    expect(decode({ kind: 'NODE_LABEL', hardLabels: [{ key: 'zone', op: 'near', values: ['a'] }] })).toThrow(/hard\[0\]\.op/);
    expect(decode({ kind: 'NODE_LABEL', softLabels: [{ key: 'zone', op: 'in' }] })).toThrow(/soft\[0\]\.values/);
    expect(decode({ kind: 'NODE_AFFINITY' })).toThrow(/nodeId/);
    expect(decode({ kind: 'TELEPORT' })).toThrow(/unknown scheduling strategy/);
  });
});
