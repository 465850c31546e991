/**
 * The node table by versioned deltas, with the GCS in this process and real node daemons: the table
 * each node holds equals the GCS's after joins and a death; a node that misses a delta (dropped by
 * the GCS's test hook) finds the gap and gets the whole table; an idle cluster's heartbeats carry no
 * resources and cost the same bytes per heartbeat whatever the number of nodes (counters, not time).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GcsServer, type GcsStats } from '../src/gcs.js';
import { type DaemonProc, TestCluster, until } from './fixtures/cluster-harness.js';

/** What a node answers to the state snapshot `node_table`. */
interface HeldTable {
  nodeId: string;
  version: number;
  nodes: { nodeId: string; alive: boolean; available: Record<string, number> }[];
}

describe('node table deltas (GCS here, nodes as processes)', () => {
  const c = new TestCluster();
  let gcs: GcsServer;
  const nodes: DaemonProc[] = [];

  const addNode = async () => {
    const d = await c.spawn('node', { numCpus: 1 }, { headAddress: gcs.address, nodeDeathTimeoutS: 3 });
    nodes.push(d);
    return d;
  };

  /** Every alive node's held table. */
  const heldTables = async (): Promise<HeldTable[]> =>
    (await gcs.askNodes({ stateSnapshot: { what: 'node_table' } })).map((a) => JSON.parse(a.response.state!.json![0]!) as HeldTable);

  /** The GCS's table as node `self` should hold it (every other node, alive or not). */
  const expected = (self: string) =>
    gcs
      .nodeInfos()
      .filter((n) => n.nodeId !== self)
      .map((n) => ({ nodeId: n.nodeId, alive: n.alive }))
      .sort((a, b) => a.nodeId.localeCompare(b.nodeId));
  const held = (t: HeldTable) => t.nodes.map((n) => ({ nodeId: n.nodeId, alive: n.alive })).sort((a, b) => a.nodeId.localeCompare(b.nodeId));

  /** True when every alive node holds the GCS's table (membership and liveness). */
  const allAgree = async () => {
    const tables = await heldTables();
    return tables.length === gcs.stats().aliveNodes && tables.every((t) => JSON.stringify(held(t)) === JSON.stringify(expected(t.nodeId)));
  };

  beforeAll(async () => {
    gcs = await GcsServer.start({ host: '127.0.0.1', port: 0, token: c.token, nodeDeathTimeoutMs: 3000 });
    for (let i = 0; i < 3; i++) await addNode();
  }, 120_000);
  afterAll(async () => {
    await c.stop();
    await gcs?.close();
  }, 60_000);

  it('each node holds the GCS table after joins and after a node is killed', async () => {
    await until(allAgree, 30_000, 'every node to hold the table with 3 nodes');
    const tables = await heldTables();
    expect(tables.map((t) => held(t).length)).toEqual([2, 2, 2]);

    const victim = nodes.pop()!;
    victim.proc.kill('SIGKILL');
    await until(() => gcs.nodeInfos().some((n) => n.nodeId === victim.ready.nodeId && !n.alive), 30_000, 'the GCS to declare the killed node dead');
    await until(allAgree, 30_000, 'the other nodes to hold the death');
    for (const t of await heldTables()) expect(t.nodes.find((n) => n.nodeId === victim.ready.nodeId)?.alive).toBe(false);
  }, 120_000);

  it('a node whose delta was dropped asks for the whole table and holds the new node', async () => {
    const target = nodes[0]!.ready.nodeId;
    const before = gcs.stats().tables.full;
    gcs.dropNextDeltaTo(target);
    // The next delta that changes something announces this new node; the target never gets it.
    const late = await addNode();
    await until(
      async () => (await heldTables()).find((t) => t.nodeId === target)?.nodes.some((n) => n.nodeId === late.ready.nodeId && n.alive),
      30_000,
      'the node that missed a delta to learn about the new node',
    );
    // One whole table for the new node's registration, one (at least) for the node that asked.
    expect(gcs.stats().tables.full - before).toBeGreaterThanOrEqual(2);
    await until(allAgree, 30_000, 'every node to hold the table again');
  }, 120_000);

  it('bytes per heartbeat and per table message stay the same as nodes join an idle cluster', async () => {
    /** Averages over the next `beats` heartbeats (counters taken at both ends). */
    const measure = async (beats: number) => {
      const a: GcsStats = gcs.stats();
      await until(() => gcs.stats().heartbeats - a.heartbeats >= beats, 60_000, `${beats} heartbeats`);
      const b = gcs.stats();
      const diff = (s: GcsStats, dir: 'in' | 'out', kind: string) => s.traffic[dir].byKind[kind] ?? { messages: 0, bytes: 0 };
      const hbIn = diff(b, 'in', 'nodeHeartbeat').bytes - diff(a, 'in', 'nodeHeartbeat').bytes;
      const hbN = diff(b, 'in', 'nodeHeartbeat').messages - diff(a, 'in', 'nodeHeartbeat').messages;
      const tabOut = diff(b, 'out', 'nodeTable').bytes - diff(a, 'out', 'nodeTable').bytes;
      const tabN = diff(b, 'out', 'nodeTable').messages - diff(a, 'out', 'nodeTable').messages;
      return { perHeartbeat: hbIn / hbN, perTableMessage: tabN ? tabOut / tabN : 0, reports: b.resourceReports - a.resourceReports };
    };
    /** Settled: two keep-alives made (a keep-alive means nothing changed since the broadcast before). */
    const settle = async () => {
      const k = gcs.stats().tables.keepAlives;
      await until(() => gcs.stats().tables.keepAlives >= k + 2, 30_000, 'two keep-alives');
    };
    await until(allAgree, 30_000, 'a settled table');
    await settle();
    const small = await measure(10 * gcs.stats().aliveNodes);
    await addNode();
    await addNode();
    await until(allAgree, 30_000, 'a settled table with 2 more nodes');
    await settle();
    const large = await measure(10 * gcs.stats().aliveNodes);
    // Idle: no resource reports, heartbeats of the same size (a varint or two may grow by a byte),
    // and the table messages are keep-alives that do not list the nodes.
    expect([small.reports, large.reports]).toEqual([0, 0]);
    expect(Math.abs(large.perHeartbeat - small.perHeartbeat)).toBeLessThanOrEqual(2);
    expect(large.perTableMessage).toBeLessThanOrEqual(small.perTableMessage + 2);
    expect(large.perTableMessage).toBeLessThan(64);
  }, 180_000);
});
