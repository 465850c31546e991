/**
 * A node's life around its head, with real processes on loopback: it stops (with the reason in its
 * log) once its head is gone for the configured time; a refused node's log is clean (one reason, one
 * `msg` per JSON line); `tsray status --address HEAD:PORT` works from a machine without the head
 * (as `ray status`); the GCS refuses a node that advertises loopback when bound elsewhere.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as zmq from 'zeromq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage } from '@tsray/protocol';
import { GCS_AUDIENCE, curveClientOptions, makeTokenProof } from '@tsray/core/internal';
import { GcsServer } from '../src/gcs.js';
import { TestCluster } from './fixtures/cluster-harness.js';
import { tsray } from './fixtures/cli.js';
import { tempDir } from './fixtures/util.js';

describe('a node and its head', () => {
  let c: TestCluster;

  beforeAll(async () => {
    c = new TestCluster();
    await c.startHead({ numCpus: 1 });
    await c.addNode({ numCpus: 1 });
  }, 60_000);
  afterAll(async () => {
    await c?.stop();
  }, 30_000);

  it('tsray status --address HEAD:PORT from a machine without a head, with the token file (a wrong token is refused clearly)', async () => {
    const elsewhere = tempDir();
    try {
      const tokenFile = join(elsewhere.dir, 'token');
      writeFileSync(tokenFile, `${c.token}\n`);
      const r = await tsray(['status', '--address', c.gcsAddress, '--token-file', tokenFile], { TMPDIR: elsewhere.dir });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('Nodes: 2 alive, 0 dead');
      const list = await tsray(['list', 'nodes', '--format', 'json', '--address', c.gcsAddress], { TMPDIR: elsewhere.dir, TSRAY_TOKEN: c.token });
      expect(list.code, list.stderr).toBe(0);
      expect((JSON.parse(list.stdout) as { nodeId: string }[]).map((n) => n.nodeId).sort()).toEqual([c.head.ready.nodeId, c.nodes[0]!.ready.nodeId].sort());
      const bad = await tsray(['status', '--address', c.gcsAddress, '--token', 'wrong'], { TMPDIR: elsewhere.dir });
      expect([bad.code, bad.stderr]).toEqual([1, 'tsray: the head refused the connection: wrong cluster token\n']);
    } finally {
      elsewhere.cleanup();
    }
  }, 60_000);

  it('a refused node (wrong token) logs the reason once per line, without a TDZ error or duplicate msg keys', async () => {
    await expect(c.addNode({ token: 'wrong-token' })).rejects.toThrow(/refused the connection: wrong cluster token/);
    const logs = join(c.sessionDir, 'logs');
    const text = readdirSync(logs)
      .filter((f) => /^node-\d+\.err$/.test(f))
      .map((f) => readFileSync(join(logs, f), 'utf8'))
      .find((t) => t.includes('wrong cluster token'))!;
    expect(text).toBeDefined();
    expect(text).not.toMatch(/before initialization|ReferenceError|TypeError/);
    expect(text.split('\n').filter((l) => /^tsray node\b.*wrong cluster token/.test(l))).toEqual([
      'tsray node: the head refused the connection: wrong cluster token',
    ]);
    for (const line of text.split('\n').filter((l) => l.startsWith('{'))) expect(line.match(/"msg":/g)?.length, line).toBe(1);
  }, 60_000);

  it('a node whose head is killed logs the loss, and stops after --head-lost-timeout with the reason', async () => {
    const node = await c.spawn('node', { numCpus: 1 }, { headAddress: c.gcsAddress, headLostTimeoutS: 4 });
    c.head.proc.kill('SIGKILL');
    expect(await node.exited).toBe(1);
    const log = readFileSync(node.errLog, 'utf8');
    expect(log).toMatch(/no word from the head; reconnecting/);
    for (const line of log.split('\n').filter((l) => l.startsWith('{'))) expect(line.match(/"msg":/g)?.length, line).toBe(1);
    expect(log).toContain(
      `tsray node ${node.ready.nodeId}: lost the head (GCS at ${c.gcsAddress}): no word from it for 4 s (--head-lost-timeout / TSRAY_HEAD_LOST_TIMEOUT_S); this node stops`,
    );
  }, 120_000);
});

describe('the GCS refuses a node advertising loopback when it is bound elsewhere', () => {
  it('answers RegisterNode with the reason, and the node is not in the table', async () => {
    const token = 'gcs-test-token';
    const g = await GcsServer.start({ host: '127.0.0.1', port: 0, token });
    g.refuseLoopbackNodes = true; // as the daemon sets it for a head bound to a non-loopback address
    const id = 'node:abc';
    const sock = new zmq.Dealer({ routingId: id, linger: 0, ...curveClientOptions(`tcp://${g.address}`, token) });
    try {
      sock.connect(`tcp://${g.address}`);
      await sock.send(
        encodeMessage({
          registerNode: {
            node: { nodeId: 'abc', address: 'tcp://127.0.0.1:4567', hostname: 'h' },
            ...makeTokenProof(token, { kind: 'RegisterNode', audience: GCS_AUDIENCE, id }),
          },
        }),
      );
      const { envelope } = decodeMessage(await sock.receive());
      expect(envelope.error?.message).toBe(
        "the head refused the node: it advertises tcp://127.0.0.1:4567 (loopback), which the other nodes cannot reach; start it without --host (it then uses the address it reaches the head on) or with --host <its machine's address>",
      );
      expect(g.nodeInfos()).toEqual([]);
    } finally {
      sock.close();
      await g.close();
    }
  });
});
