/**
 * The cluster's tcp transport against an eavesdropper, a replaying member and a peer without the
 * token (issue #17, acceptance 1), with real daemons: the head on a private bridge and two nodes in
 * network namespaces wired to it by veth pairs (as netns.spec). A raw packet socket (AF_PACKET,
 * fixtures/capture.py) records everything crossing node A's veth while objects whose bytes this test
 * knows travel both ways; the capture must hold their byte count but none of their bytes. A real
 * Python driver's registration proof is captured by letting it register with a stand-in GCS and node
 * that this test runs, then replayed to node B and to the GCS (refused: the proof names node A and
 * RegisterWorker) and twice to node A (accepted once, then refused as a replay). A client with another
 * cluster's keys fails the CURVE handshake and nothing it sends is read. Needs root (CAP_NET_ADMIN and
 * CAP_NET_RAW) and iproute2; without them every test is skipped with the reason, printed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';
import { decodeMessage, encodeMessage, tsray } from '@tsray/protocol';
import { get, listTransferStats, nodes, put } from '@tsray/core';
import { GCS_AUDIENCE, curveClientOptions, makeCurveServer, makeTokenProof, onCurveRefused } from '@tsray/core/internal';
import { until } from './fixtures/cluster-harness.js';
import { NetnsCluster } from './fixtures/netns-cluster.js';
import { digestOf, makeBlob } from './fixtures/netns-fns.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PYTHON = `${ROOT}.venv/bin/python`;
const CAPTURE = fileURLToPath(new URL('./fixtures/capture.py', import.meta.url));

/** How many of `buf`'s 32-byte slices (64, spread evenly) occur in `hay`. */
function slicesFound(buf: Buffer, hay: Buffer): number {
  let found = 0;
  for (let i = 0; i < 64; i++) {
    const at = Math.floor(((buf.length - 32) * i) / 63);
    if (hay.includes(buf.subarray(at, at + 32))) found++;
  }
  return found;
}

/** The first message on `sock` within `ms`, or undefined. */
async function receiveWithin(sock: zmq.Dealer, ms: number): Promise<tsray.v1.Envelope | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const frames = await Promise.race([sock.receive(), new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]);
    return frames ? decodeMessage(frames).envelope : undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** A DEALER with routing id `id` and the cluster's CURVE member keys, connected to `endpoint`. */
function memberDealer(endpoint: string, id: Buffer | string, token: string): zmq.Dealer {
  const s = new zmq.Dealer({ routingId: id.toString(), linger: 0, ...curveClientOptions(endpoint, token) });
  s.connect(endpoint);
  return s;
}

describe('tcp transport: CURVE encryption, bound proofs, keyless peers refused', () => {
  const net = new NetnsCluster('transport-security.spec');
  const addressOf = new Map<string, string>();

  beforeAll(async () => {
    if (!(await net.start('transport'))) return;
    const all = await until(async () => ((await nodes()).filter((n) => n.alive).length === 3 ? nodes() : undefined), 15_000, 'three nodes alive');
    for (const n of all) addressOf.set(n.nodeId, n.address);
  }, 60_000);

  afterAll(() => net.stop(), 30_000);

  it('objects crossing a veth, both ways, inline and chunked, are not on the wire in the clear', async (ctx) => {
    const l = net.needLab(ctx);
    const file = join(net.cluster.tmp, 'veth-a.bin');
    const cap = spawn(PYTHON, [CAPTURE, l.namespaces[0]!.hostVeth, file], { stdio: ['ignore', 'pipe', 'inherit'] });
    const capExit = new Promise<number | null>((r) => cap.once('exit', r));
    try {
      let out = '';
      cap.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      await until(() => out.includes('ready') || cap.exitCode !== null, 10_000, 'the capture to start');
      expect(out).toContain('ready');
      const small = randomBytes(3 * 1024 * 1024); // travels inline (below the 8 MiB chunk)
      const large = randomBytes(12 * 1024 * 1024); // travels as ObjectChunks
      // `large` twice: the first pull from a holder opens its data-plane session (its chunks may still go over CURVE), the second uses it.
      for (const b of [small, large, large]) {
        const [sum, len] = await get(digestOf.options({ resources: { ns_a: 1 } }).remote(put(b)));
        expect([sum, len]).toEqual([createHash('sha256').update(b).digest('hex'), b.length]);
      }
      const back = await get(makeBlob.options({ resources: { ns_a: 1 } }).remote(2)); // node A -> head
      // The chunked objects were pulled over the data plane (not the CURVE link), so the capture covers it.
      const stats = await listTransferStats();
      expect(stats.reduce((n, s) => n + s.pulls.dataPlaneChunksIn, 0)).toBeGreaterThan(0);
      // Across the veth the sessions seal their chunks (only a loopback session may stay plain).
      expect(stats.reduce((n, s) => n + s.pulls.dataPlaneSealedPeers, 0)).toBeGreaterThan(0);
      cap.kill('SIGTERM');
      expect(await capExit).toBe(0);
      const wire = readFileSync(file);
      // The objects crossed this veth (the capture saw at least their bytes) ...
      expect(wire.length).toBeGreaterThan(small.length + 2 * large.length + back.length);
      // ... but none of their bytes, nor the token.
      expect([slicesFound(small, wire), slicesFound(large, wire), slicesFound(Buffer.from(back), wire)]).toEqual([0, 0, 0]);
      expect(wire.includes(Buffer.from(net.cluster.token))).toBe(false);
    } finally {
      if (cap.exitCode === null) cap.kill('SIGKILL');
      await capExit;
    }
  }, 60_000);

  it('a captured registration proof replayed to another node or the GCS is refused; to its node, accepted once', async (ctx) => {
    net.needLab(ctx);
    const token = net.cluster.token;
    const idA = net.nodeA.ready.nodeId;
    // A stand-in head and node on loopback, with this cluster's keys: a real Python driver asks the
    // stand-in GCS where to connect (it names node A's id with the stand-in node's address) and sends
    // its RegisterWorker, with a proof for node A, to the stand-in node, which records it.
    const gcs = new zmq.Router({ linger: 0 });
    const fakeNode = new zmq.Router({ linger: 0 });
    const zaps = [makeCurveServer(gcs, token), makeCurveServer(fakeNode, token)];
    let py: ChildProcess | undefined;
    try {
      await Promise.all(zaps.map((z) => z.ready));
      await gcs.bind('tcp://127.0.0.1:0');
      await fakeNode.bind('tcp://127.0.0.1:0');
      const elsewhere = join(net.cluster.tmp, 'elsewhere');
      mkdirSync(elsewhere, { recursive: true });
      const code = 'import sys, tsray\ntsray.init(address=sys.argv[1], token=sys.argv[2], connect_timeout=60)';
      py = spawn(PYTHON, ['-c', code, gcs.lastEndpoint!.replace('tcp://', ''), token], {
        env: { ...process.env, TMPDIR: elsewhere, PYTHONPATH: `${ROOT}python` },
        stdio: 'ignore',
      });
      const [gcsPeer, ...ask] = await gcs.receive();
      const req = decodeMessage(ask).envelope.gcsRequest!;
      expect(req.clusterEntry?.authProof?.length).toBe(32);
      const entry = { nodeId: idA, address: fakeNode.lastEndpoint!, alive: true, isHead: true };
      await gcs.send([gcsPeer!, ...encodeMessage({ gcsResponse: { requestId: req.requestId, nodes: { nodes: [entry] } } })]);
      const [pyId, ...registration] = await fakeNode.receive();
      const reg = decodeMessage(registration).envelope.registerWorker!;
      expect([reg.kind, reg.authProof?.length]).toEqual(['driver', 32]);

      // Replayed byte for byte to node B: refused (the proof names node A).
      const toB = memberDealer(addressOf.get(net.nodeB.ready.nodeId)!, pyId!, token);
      await toB.send(registration);
      const b = await receiveWithin(toB, 15_000);
      toB.close();
      expect(b?.error?.code).toBe(tsray.v1.ErrorCode.ERROR_CODE_AUTH_FAILED);
      expect(b?.error?.message).toMatch(/proof made for another receiver or message/);

      // The same proof as a node's registration to the GCS: refused (another receiver and message).
      const toGcs = memberDealer(`tcp://${net.cluster.gcsAddress}`, pyId!, token);
      const proof = { authProof: Buffer.from(reg.authProof!), authTime: Number(reg.authTime), authNonce: reg.authNonce! };
      await toGcs.send(encodeMessage({ registerNode: { node: { nodeId: 'replayed', address: 'tcp://10.0.0.1:1', hostname: 'x' }, ...proof } }));
      const g = await receiveWithin(toGcs, 15_000);
      toGcs.close();
      expect(g?.error?.code).toBe(tsray.v1.ErrorCode.ERROR_CODE_AUTH_FAILED);
      expect(g?.error?.message).toMatch(/this is the GCS, the message RegisterNode/);
      expect((await nodes()).map((n) => n.nodeId)).not.toContain('replayed');

      // To node A, the receiver it names: the proof is good (accepted once), a second use is a replay.
      const toA = memberDealer(addressOf.get(idA)!, pyId!, token);
      await toA.send(registration);
      expect((await receiveWithin(toA, 15_000))?.workerAccepted?.nodeId).toBe(idA);
      await toA.send(registration);
      const r = await receiveWithin(toA, 15_000);
      toA.close();
      expect(r?.error?.message).toMatch(/already used \(replayed\)/);
    } finally {
      py?.kill('SIGKILL');
      gcs.close();
      fakeNode.close();
      for (const z of zaps) z.release();
    }
  }, 90_000);

  it('a client with another cluster’s keys fails the CURVE handshake at the GCS and at a node; nothing it sends is read', async (ctx) => {
    net.needLab(ctx);
    for (const endpoint of [`tcp://${net.cluster.gcsAddress}`, addressOf.get(net.nodeB.ready.nodeId)!]) {
      const s = new zmq.Dealer({ routingId: 'intruder', linger: 0, ...curveClientOptions(endpoint, 'another-clusters-token') });
      const refused = new Promise<string>((r) => onCurveRefused(s, r));
      s.connect(endpoint);
      const id = 'intruder';
      await s.send(
        encodeMessage({
          registerNode: {
            node: { nodeId: 'x', address: 'tcp://10.0.0.1:1', hostname: 'x' },
            ...makeTokenProof('another-clusters-token', { kind: 'RegisterNode', audience: GCS_AUDIENCE, id }),
          },
        }),
      );
      expect(await refused).toBe(''); // three failed handshakes, none succeeded
      expect(await receiveWithin(s, 500)).toBeUndefined();
      s.close();
    }
    // The receivers log the refusal (rate-limited: one line, then a count a minute).
    for (const log of [net.cluster.head.errLog, net.nodeB.errLog])
      await until(() => readFileSync(log, 'utf8').includes('refused a tcp connection: the CURVE handshake failed'), 10_000, `the refusal in ${log}`);
    // A plain (NULL mechanism) ZeroMQ client gets nowhere either.
    const plain = new zmq.Dealer({ routingId: 'plain', linger: 0 });
    const refused = new Promise<string>((r) => onCurveRefused(plain, r));
    plain.connect(`tcp://${net.cluster.gcsAddress}`);
    await plain.send(encodeMessage({ heartbeat: { seq: 1 } }));
    expect(await refused).toMatch(/one side runs without CURVE/);
    expect(await receiveWithin(plain, 500)).toBeUndefined();
    plain.close();
  }, 60_000);
});
