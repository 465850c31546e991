import { describe, expect, it } from 'vitest';
import { formatBytes, formatList, formatShape, formatStatus, formatUsage } from '../src/cli/format.js';
import { fakeStatus } from './fixtures/state.js';

describe('tsray status formatter', () => {
  it('prints alive and dead nodes, used/total per node incl. GPU, totals, pending and infeasible demand, placement groups', () => {
    const text = formatStatus(fakeStatus);
    expect(text).toBe(
      [
        '======== Cluster status ========',
        'Nodes: 2 alive, 1 dead',
        '-'.repeat(64),
        'Alive:',
        ' node-head-aaaa (head)  127.0.0.1:6380  host-a',
        '   CPU 1/4  GPU 0.5/2  memory 2GiB/8GiB  accel 0/2',
        ' node-worker-bbbb  127.0.0.1:40001  host-b',
        '   CPU 2/2',
        'Dead:',
        ' node-dead-cccc  10.0.0.3:40002  host-c  (no heartbeat for 3 s)',
        '',
        'Resources (used/total, alive nodes)',
        '-'.repeat(64),
        ' 3/6 CPU',
        ' 0.5/2 GPU',
        ' 2GiB/8GiB memory',
        ' 0/2 accel',
        '',
        'Pending demand',
        '-'.repeat(64),
        ' {CPU: 1} x3  task train',
        'Infeasible demand (fits no node)',
        '-'.repeat(64),
        ' [{GPU: 8}, {GPU: 8}] x1  placement_group big-pg  (no node has: GPU)',
        ' {TPU: 1} x2  actor Tpu  (no node has: TPU)',
        '',
        'Placement groups',
        '-'.repeat(64),
        ' pg-0001  pair  STRICT_PACK  CREATED  [{CPU: 1}, {GPU: 0.5}]  on node-head-aaaa, node-head-aaaa',
        '',
      ].join('\n'),
    );
  });

  it('says (none) for empty sections', () => {
    const text = formatStatus({ nodes: [], pendingDemand: [], placementGroups: [] });
    expect(text).toContain('Nodes: 0 alive, 0 dead');
    expect(text.match(/ \(none\)/g)?.length).toBe(6);
  });

  it('formats quantities, shapes and usage', () => {
    expect(formatBytes(0)).toBe('0B');
    expect(formatBytes(1536)).toBe('1.5KiB');
    expect(formatShape({ accel: 1, CPU: 0.25, GPU: 1 })).toBe('{CPU: 0.25, GPU: 1, accel: 1}');
    expect(formatUsage({ CPU: 1.00005 }, { CPU: 0 })).toBe('CPU 1.0001/1.0001');
    expect(formatUsage({}, {})).toBe('(no resources)');
  });

  it('formats list tables', () => {
    const t = formatList('nodes', fakeStatus.nodes);
    const lines = t.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NODE_ID\s+STATE\s+HEAD\s+ADDRESS\s+HOSTNAME\s+PID\s+RESOURCES$/);
    expect(lines[1]).toMatch(/^node-head-aaaa\s+ALIVE\s+yes\s+127\.0\.0\.1:6380\s+host-a\s+100\s+\{CPU: 4, GPU: 2, memory: 8GiB, accel: 2\}$/);
    expect(lines[3]).toMatch(/^node-dead-cccc\s+DEAD\s+10\.0\.0\.3/);
    const pgs = formatList('placement-groups', fakeStatus.placementGroups).trimEnd().split('\n');
    expect(pgs[0]).toMatch(/^PLACEMENT_GROUP_ID\s+NAME\s+STRATEGY\s+STATE\s+BUNDLES\s+BUNDLE_NODES$/);
    expect(pgs[1]).toMatch(/^pg-0001\s+pair\s+STRICT_PACK\s+CREATED\s+\[\{CPU: 1\}, \{GPU: 0\.5\}\]\s+node-head-aaaa,node-head-aaaa$/);
    expect(formatList('jobs', [])).toBe('SUBMISSION_ID  STATUS  START_TIME  END_TIME  ENTRYPOINT\n(no jobs)\n');
  });
});
