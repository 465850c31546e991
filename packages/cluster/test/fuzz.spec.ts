/**
 * Fuzz (issue #17, acceptance 3): 100,000 random and mutated frames, from a seeded generator, to the
 * GCS port, a node's tcp port and an LLM engine's tcp data plane (scripted backend), over real daemons
 * with CURVE on (the default):
 * - raw TCP connections writing random bytes (they never get past the CURVE handshake);
 * - cluster members at the transport (CURVE keys from the token) that never registered: random
 *   messages and mutations of real ones, many connections;
 * - one connection per daemon that registered first (a node registration with a valid proof to the
 *   GCS, a driver registration to the node; the engine has no registration), then the same;
 * - beside those, 200 raw TCP connections of random bytes to the node's data port (the bulk data plane:
 *   no valid hello, so each is closed; the data plane serves pulls afterwards), and 200 connections to the
 *   node's unix stream socket for its workers: random bytes, or a hello with an id of no worker it started
 *   followed by random bytes (each closed; its workers are served afterwards).
 * Afterwards every daemon and the engine still serve, their RSS grew by less than 100 MB, and the logs
 * have at most one line per rejected connection (the registered one: exactly one), not one per frame.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';
import { decodeMessage, encodeMessage, type EnvelopeBody } from '@tsray/protocol';
import { get, init, kill, listTransferStats, nodes, python, shutdown, type ActorHandle } from '@tsray/core';
import { GCS_AUDIENCE, curveClientOptions, makeTokenProof, streamHello } from '@tsray/core/internal';
import { TestCluster, until, type DaemonProc } from './fixtures/cluster-harness.js';
import { whereAmI } from './fixtures/fns.js';
import { makeBlob } from './fixtures/netns-fns.js';
import { prng, rssKiB } from './fixtures/fuzzing.js';

/** Frames per target and phase (3 targets; the engine has no registered phase): 100,000 in all. */
const PLAN = {
  raw: { connections: 40, frames: 50 }, // 2,000 per target
  member: { connections: 200, frames: 50 }, // 10,000 per target
  registered: 18_000, // GCS and node (6,000 raw + 20,000 + 38,000 + 36,000 = 100,000)
  engineMembers: { connections: 40, frames: 950 }, // 38,000 (the engine's members: its clients)
};
/** Raw connections to the node's data port (the bulk data plane; beside the 100,000 frames above). */
const DATA_PORT = { connections: 200, writes: 20 };
/** Connections to the node's unix stream socket for its workers (half of them start with a hello). */
const STREAM_SOCKET = { connections: 200, writes: 20 };
const MAX_FRAME = 2048;
const RSS_GROWTH_LIMIT_KIB = 100 * 1024;

/** A random byte string, or a mutation (bytes flipped, cut, extended, frames split) of one of `corpus`. */
function fuzzMessage(rand: () => number, corpus: Buffer[][]): Buffer[] {
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
  if (rand() < 0.4) return Array.from({ length: 1 + Math.floor(rand() * 3) }, () => bytes(Math.floor(rand() * MAX_FRAME)));
  const frames = corpus[Math.floor(rand() * corpus.length)]!.map((f) => Buffer.from(f));
  const f = frames[Math.floor(rand() * frames.length)]!;
  const edits = 1 + Math.floor(rand() * 4);
  let out = f;
  for (let i = 0; i < edits; i++) {
    const r = rand();
    if (r < 0.5 && out.length > 0) out[Math.floor(rand() * out.length)] = Math.floor(rand() * 256);
    else if (r < 0.7) out = out.subarray(0, Math.floor(rand() * out.length));
    else if (r < 0.9) out = Buffer.concat([out, bytes(Math.floor(rand() * 64))]);
    else frames.push(bytes(Math.floor(rand() * 64)));
  }
  frames[frames.indexOf(f)] = out;
  return frames;
}

/**
 * A connection writing `count` random strings (after `first`, when given), then closing (bounded by a
 * deadline): raw TCP to a port on loopback, or to a unix socket path.
 */
function rawConnection(target: number | string, rand: () => number, count: number, first?: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const s = typeof target === 'number' ? connect({ host: '127.0.0.1', port: target }) : connect({ path: target });
    const deadline = setTimeout(() => s.destroy(), 2000);
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(deadline);
      resolve();
    });
    s.on('connect', () => {
      if (first) s.write(first);
      for (let i = 0; i < count; i++) s.write(randomBytes(Math.floor(rand() * MAX_FRAME) + 1));
      s.end();
    });
  });
}

interface Client {
  sock: zmq.Dealer;
  /** How many messages came back. */
  replies: () => number;
  /** The first few messages that came back. */
  first: Buffer[][];
  close: () => void;
}

/** A DEALER with `options`, connected to `endpoint`, whose replies are read (and counted) as they come. */
function dealer(endpoint: string, options: Record<string, unknown>): Client {
  const sock = new zmq.Dealer({ linger: 0, sendHighWaterMark: 0, ...options } as ConstructorParameters<typeof zmq.Dealer>[0]);
  sock.connect(endpoint);
  let n = 0;
  const first: Buffer[][] = [];
  void (async () => {
    try {
      for await (const m of sock) if (n++ < 5) first.push(m);
    } catch {
      /* closed */
    }
  })();
  return { sock, replies: () => n, first, close: () => sock.close() };
}

/** Send `count` fuzz messages on `sock`, and `keepAlive` (a registered peer's heartbeat) every 100. */
async function pump(sock: zmq.Dealer, rand: () => number, corpus: Buffer[][], count: number, keepAlive?: EnvelopeBody): Promise<void> {
  for (let i = 0; i < count; i++) {
    if (keepAlive && i % 100 === 0) await sock.send(encodeMessage(keepAlive));
    await sock.send(fuzzMessage(rand, corpus));
  }
}

const corpusOf = (bodies: EnvelopeBody[]): Buffer[][] => bodies.map((b) => encodeMessage(b).map((f) => Buffer.from(f)));

/** Real messages whose mutations are sent: things a peer says to a node or the GCS, and to an engine. */
const CLUSTER_CORPUS = corpusOf([
  { heartbeat: { seq: 7 } },
  { nodeHeartbeat: { nodeId: 'fuzz', seq: 3 } },
  { refUpdates: { add: ['00aa'], remove: ['00bb'] } },
  { subscribeObjects: { objectIds: ['00cc', '00dd'] } },
  { gcsRequest: { requestId: 9, listNodes: {} } },
  { registerWorker: { workerId: 'fuzz', pid: 1, language: 'typescript', kind: 'driver' } },
]);
/**
 * What a registered connection's fuzz mutates: no registrations (a registered connection that sends a
 * bad one is closed, as an unregistered one is, and would only be ignored from then on).
 */
const REGISTERED_CORPUS = CLUSTER_CORPUS.slice(0, -1);
const ENGINE_CORPUS = corpusOf([{ engineStatsRequest: { requestId: 1 } }, { abortGenerate: { requestIds: ['a', 'b'] } }]);

type EngineApi = { address(): string; server_key(): string; info(): { pid: number }; stats(): unknown; shutdown(): boolean };

describe('fuzz: 100,000 frames to the GCS, a node and an engine (CURVE on)', () => {
  const c = new TestCluster();
  let node: DaemonProc;
  let engine: ActorHandle<EngineApi> | undefined;

  beforeAll(async () => {
    await c.startHead({ numCpus: 1 });
    node = await c.addNode({ numCpus: 1, resources: { fuzz_node: 1 } });
    c.attachHere();
    await init({ address: 'auto', namespace: 'fuzz' });
  }, 60_000);

  afterAll(async () => {
    if (engine) kill(engine);
    await shutdown();
    c.detachHere();
    await c.stop();
  }, 30_000);

  it('every daemon keeps serving; RSS grows < 100 MB; one log line per rejected connection', async () => {
    const Engine = python.actor<EngineApi>('tsray.engine.actor:EngineActor', { numCpus: 0 });
    engine = Engine.remote({ model: 'scripted', backend: 'scripted', engine_args: {}, num_gpus: 0, gpu_fraction: 1, bind: 'tcp' });
    const engineAddress = String(await get(engine.address.remote(), { timeout: 60 }));
    const serverKey = String(await get(engine.server_key.remote()));
    const enginePid = (await get(engine.info.remote())).pid;
    expect(engineAddress).toMatch(/^tcp:\/\//);
    expect(serverKey).toHaveLength(40);
    const engineKeys = () => ({
      curveServerKey: serverKey,
      ...(({ publicKey, secretKey }) => ({ curvePublicKey: publicKey, curveSecretKey: secretKey }))(zmq.curveKeyPair()),
    });

    const pids = { head: c.head.proc.pid!, node: node.proc.pid!, engine: enginePid };
    const before = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, rssKiB(p)])) as Record<keyof typeof pids, number>;
    const endpoints = { GCS: `tcp://${c.gcsAddress}`, node: node.ready.nodeAddress!, engine: engineAddress };
    const portOf = (e: string) => Number(/:(\d+)$/.exec(e)![1]);
    let frames = 0;

    // 1. Raw bytes to each port: refused at the handshake.
    for (const [name, endpoint] of Object.entries(endpoints)) {
      const rand = prng(0x1234 + name.length);
      for (let i = 0; i < PLAN.raw.connections; i += 8)
        await Promise.all(Array.from({ length: 8 }, () => rawConnection(portOf(endpoint), rand, PLAN.raw.frames)));
      frames += PLAN.raw.connections * PLAN.raw.frames;
    }

    // 1b. Raw bytes to the node's data port (its bulk data plane's TCP listener, bound on first use: a pull
    // of a result made on the node opens it): every connection without a valid hello is closed.
    const pulledChunks = async () => (await listTransferStats()).reduce((n, s) => n + s.pulls.dataPlaneChunksIn, 0);
    expect((await get(makeBlob.options({ resources: { fuzz_node: 1 } }).remote(12), { timeout: 60 })).length).toBe(12 * 1024 * 1024);
    const chunksBefore = await pulledChunks();
    expect(chunksBefore).toBeGreaterThan(0);
    const dataPort = Number(/"port":(\d+),"msg":"data plane listening"/.exec(readFileSync(node.errLog, 'utf8'))?.[1]);
    expect(dataPort).toBeGreaterThan(0);
    {
      const rand = prng(0xd47a);
      for (let i = 0; i < DATA_PORT.connections; i += 8) await Promise.all(Array.from({ length: 8 }, () => rawConnection(dataPort, rand, DATA_PORT.writes)));
    }

    // 1c. The node's unix stream socket for its workers (beside its ipc socket): random bytes, or a hello
    // naming an id of no worker it started; each connection is closed.
    const streamSocket = node.ready.nodeSocket.replace(/^ipc:\/\//, '').replace(/\.sock$/, '.wsock');
    {
      const rand = prng(0x57e4);
      for (let i = 0; i < STREAM_SOCKET.connections; i += 8)
        await Promise.all(
          Array.from({ length: 8 }, (_, j) =>
            rawConnection(streamSocket, rand, STREAM_SOCKET.writes, j % 2 === 0 ? streamHello(`fuzz-s-${i + j}`) : undefined),
          ),
        );
    }

    // 2. Members that never registered: each gets one ErrorReply, then is ignored.
    for (const name of ['GCS', 'node'] as const) {
      const rand = prng(0x9e3779b9 + name.length);
      for (let i = 0; i < PLAN.member.connections; i += 20) {
        const batch = Array.from({ length: 20 }, (_, j) =>
          dealer(endpoints[name], { routingId: `fuzz-m-${name}-${i + j}`, ...curveClientOptions(endpoints[name], c.token) }),
        );
        await Promise.all(batch.map((d) => pump(d.sock, rand, CLUSTER_CORPUS, PLAN.member.frames)));
        await until(() => batch.every((d) => d.replies() >= 1), 20_000, `${name}: every unregistered member answered once`);
        for (const d of batch) d.close();
      }
      frames += PLAN.member.connections * PLAN.member.frames;
    }
    // The engine's clients: CURVE with its server key (its members); no registration step.
    {
      const rand = prng(0x85ebca6b);
      const batch = Array.from({ length: PLAN.engineMembers.connections }, (_, j) => dealer(engineAddress, { routingId: `fuzz-e-${j}`, ...engineKeys() }));
      await Promise.all(batch.map((d) => pump(d.sock, rand, ENGINE_CORPUS, PLAN.engineMembers.frames)));
      await until(() => batch.every((d) => d.replies() >= 1), 30_000, 'engine: every client answered');
      for (const d of batch) d.close();
      frames += PLAN.engineMembers.connections * PLAN.engineMembers.frames;
    }

    // 3. Registered connections: a node registration to the GCS, a driver registration to the node.
    const registrations = {
      GCS: {
        id: 'node:fuzzreg',
        body: (id: string): EnvelopeBody => ({
          registerNode: {
            node: { nodeId: 'fuzzreg', address: 'tcp://127.0.0.1:1', hostname: 'fuzz' },
            ...makeTokenProof(c.token, { kind: 'RegisterNode', audience: GCS_AUDIENCE, id }),
          },
        }),
      },
      node: {
        id: 'fuzz-reg-driver',
        body: (id: string): EnvelopeBody => ({
          registerWorker: {
            workerId: id,
            pid: 1,
            language: 'typescript',
            kind: 'driver',
            remote: true,
            ...makeTokenProof(c.token, { kind: 'RegisterWorker', audience: node.ready.nodeId, id }),
          },
        }),
      },
    };
    for (const name of ['GCS', 'node'] as const) {
      const { id, body } = registrations[name];
      const d = dealer(endpoints[name], { routingId: id, ...curveClientOptions(endpoints[name], c.token) });
      await d.sock.send(encodeMessage(body(id)));
      await until(() => d.replies() >= 1, 20_000, `${name}: the registration answered`);
      const keepAlive: EnvelopeBody = name === 'GCS' ? { nodeHeartbeat: { nodeId: 'fuzzreg', seq: 1 } } : { heartbeat: { seq: 1 } };
      await pump(d.sock, prng(0x27d4eb2d + name.length), REGISTERED_CORPUS, PLAN.registered, keepAlive);
      // A registered connection keeps its connection: its bad messages keep being answered.
      await until(() => d.replies() >= PLAN.registered / 10, 60_000, `${name}: the registered connection is answered`);
      d.close();
      frames += PLAN.registered;
    }
    expect(frames).toBe(100_000);

    // Every daemon and the engine still serve.
    for (const [name, d] of Object.entries({ head: c.head, node })) expect(d.proc.exitCode, `${name} daemon still running`).toBeNull();
    const [onNode, onHead] = await get(
      [
        whereAmI.options({ resources: { fuzz_node: 1 } }).remote(),
        whereAmI.options({ schedulingStrategy: { type: 'NODE_AFFINITY', nodeId: c.head.ready.nodeId, soft: false } }).remote(),
      ],
      { timeout: 30 },
    );
    expect([onNode, onHead]).toEqual([node.ready.nodeId, c.head.ready.nodeId]);
    // The node's data plane still serves pulls (a new session: the fuzz did not take it down).
    expect((await get(makeBlob.options({ resources: { fuzz_node: 1 } }).remote(12), { timeout: 60 })).length).toBe(12 * 1024 * 1024);
    expect(await pulledChunks()).toBeGreaterThan(chunksBefore);
    const served = (await listTransferStats()).find((s) => s.nodeId === node.ready.nodeId)!.served;
    expect(served.dataPlaneDropped).toBeGreaterThanOrEqual(DATA_PORT.connections);
    expect(
      (await nodes())
        .filter((n) => n.alive && n.nodeId !== 'fuzzreg')
        .map((n) => n.nodeId)
        .sort(),
    ).toEqual([c.head.ready.nodeId, node.ready.nodeId].sort());
    const probe = dealer(engineAddress, { routingId: 'probe', ...engineKeys() });
    try {
      await probe.sock.send(encodeMessage({ engineStatsRequest: { requestId: 77 } }));
      await until(() => probe.first.length > 0, 20_000, 'the engine to answer a stats request');
      expect(decodeMessage(probe.first[0]!).envelope.engineStats?.requestId).toBe(77);
    } finally {
      probe.close();
    }

    // Memory: bounded.
    for (const [name, pid] of Object.entries(pids)) {
      const grew = rssKiB(pid) - before[name as keyof typeof pids];
      expect(grew, `${name} RSS growth (KiB)`).toBeLessThan(RSS_GROWTH_LIMIT_KIB);
    }

    // Logs: the registered connection has one line; no unregistered connection has more than one.
    for (const [name, log, id] of [
      ['GCS', c.head.errLog, registrations.GCS.id],
      ['node', node.errLog, registrations.node.id],
    ] as const) {
      const lines = readFileSync(log, 'utf8').split('\n');
      expect(
        lines.filter((l) => l.includes(`"peer":"${id}"`) && l.includes('the connection stays')),
        `${name}: lines about the registered fuzzer`,
      ).toHaveLength(1);
      const perPeer = new Map<string, number>();
      for (const l of lines.filter((x) => x.includes('fuzz-m-'))) {
        const peer = /"peer":"(fuzz-m-[^"]+)"/.exec(l)?.[1];
        if (peer) perPeer.set(peer, (perPeer.get(peer) ?? 0) + 1);
      }
      expect(perPeer.size, `${name}: some unregistered members logged`).toBeGreaterThan(0);
      expect(
        [...perPeer.values()].filter((n) => n > 1),
        `${name}: members logged more than once`,
      ).toEqual([]);
    }
    // The stream socket's refusals: at most 20 lines per 5 s, then a count (not a line per connection).
    const streamRefusals = readFileSync(node.errLog, 'utf8')
      .split('\n')
      .filter((l) => l.includes('closed a stream connection'));
    expect(streamRefusals.length).toBeGreaterThan(0);
    expect(streamRefusals.length).toBeLessThan(STREAM_SOCKET.connections / 2);
    // The data port's refusals: one line a minute, then a count (not a line per connection).
    const refusals = readFileSync(node.errLog, 'utf8')
      .split('\n')
      .filter((l) => l.includes('data plane: connection closed'));
    expect(refusals.length).toBeGreaterThan(0);
    expect(refusals.length).toBeLessThanOrEqual(5);
  }, 300_000);
});
