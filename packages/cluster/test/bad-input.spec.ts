/**
 * Bad input against a real head and node (separate processes): raw ZeroMQ DEALERs send garbage, an
 * unknown message type, another protocol version, a frame over the configured limit, and a message
 * before registering, to the GCS port and to a node's tcp port. Each gets an ErrorReply that says
 * what was wrong, the receiver logs one line for it, an unregistered connection that sent an
 * undecodable message or a message before registering is closed (a ROUTER cannot drop one TCP peer,
 * so everything it sends later is ignored), and the cluster keeps serving the driver. The daemons'
 * own errors for a port in use and an unreachable head are checked here too (the CLI's are in
 * cli-start.spec.ts).
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';
import { decodeMessage, encodeMessage, PROTOCOL_VERSION, tsray } from '@tsray/protocol';
import { get, init, nodes, shutdown } from '@tsray/core';
import { UNREGISTERED_MAX_MESSAGE_BYTES, curveClientOptions } from '@tsray/core/internal';
import { TestCluster, until, type DaemonProc } from './fixtures/cluster-harness.js';
import { whereAmI } from './fixtures/fns.js';
import { freePort } from './fixtures/util.js';

const LIMIT = 16 * 1024 * 1024;

/** The bad messages, each with what the ErrorReply must say. */
const BAD: { name: string; frames: () => Buffer[]; code: keyof typeof tsray.v1.ErrorCode; message: RegExp }[] = [
  {
    name: 'garbage',
    // An envelope whose first tag is a varint that never ends.
    frames: () => [Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02])],
    code: 'ERROR_CODE_MALFORMED',
    message: /^envelope frame \(14 bytes\) does not decode as tsray\.v1\.Envelope/,
  },
  {
    name: 'unknown-type',
    // version = 1, then field 200 (length-delimited, 3 bytes): a message type this release does not know.
    frames: () => [Buffer.from([0x08, PROTOCOL_VERSION, 0xc2, 0x0c, 0x03, 0x61, 0x62, 0x63])],
    code: 'ERROR_CODE_UNKNOWN_MESSAGE',
    message: /empty body oneof; the peer may be sending a message type this release does not know/,
  },
  {
    name: 'version',
    // version = 7, then a body this side cannot parse.
    frames: () => [Buffer.from([0x08, 0x07, 0xfa, 0x01, 0x7f, 0x00])],
    code: 'ERROR_CODE_VERSION_MISMATCH',
    message: new RegExp(`^peer speaks protocol version 7, this is ${PROTOCOL_VERSION}$`),
  },
  {
    // Before registering, anything over 64 KiB is refused undecoded (the frame limit is for members).
    name: 'oversized',
    frames: () => [...encodeMessage({ heartbeat: {} }), Buffer.alloc(LIMIT + 1)],
    code: 'ERROR_CODE_TOO_LARGE',
    message: new RegExp(`^a message of \\d+ bytes before registering \\(at most ${UNREGISTERED_MAX_MESSAGE_BYTES} bytes`),
  },
  {
    name: 'over-64k-unregistered',
    frames: () => [Buffer.alloc(UNREGISTERED_MAX_MESSAGE_BYTES + 1)],
    code: 'ERROR_CODE_TOO_LARGE',
    message: new RegExp(`^a message of ${UNREGISTERED_MAX_MESSAGE_BYTES + 1} bytes before registering`),
  },
];

describe('bad input to the GCS and to a node (real head + node)', () => {
  const c = new TestCluster();
  let node: DaemonProc;
  const sockets: zmq.Dealer[] = [];
  const tag = `${process.pid}-${Date.now().toString(36)}`;

  beforeAll(async () => {
    await c.startHead({ numCpus: 1, maxFrameBytes: LIMIT });
    node = await c.addNode({ numCpus: 1, resources: { bad_node: 1 }, maxFrameBytes: LIMIT });
    c.attachHere();
    await init({ address: 'auto', namespace: 'bad-input' });
  }, 40_000);

  afterAll(async () => {
    for (const s of sockets) s.close();
    await shutdown();
    c.detachHere();
    await c.stop();
  }, 30_000);

  const targets = () => ({
    GCS: { endpoint: `tcp://${c.gcsAddress}`, log: c.head.errLog },
    node: { endpoint: node.ready.nodeAddress!, log: node.errLog },
  });

  function dealer(endpoint: string, id: string): zmq.Dealer {
    // Cluster members at the transport (CURVE keys from the token) that never registered.
    const d = new zmq.Dealer({ routingId: id, linger: 0, receiveTimeout: 10_000, ...curveClientOptions(endpoint, c.token) });
    d.connect(endpoint);
    sockets.push(d);
    return d;
  }

  async function errorReply(d: zmq.Dealer): Promise<{ code: string; message: string }> {
    const { kind, envelope } = decodeMessage(await d.receive());
    expect(kind).toBe('error');
    return { code: tsray.v1.ErrorCode[envelope.error!.code!], message: envelope.error!.message ?? '' };
  }

  /** True when nothing arrives within `ms` (the receiver ignored what was sent). */
  async function nothingWithin(d: zmq.Dealer, ms: number): Promise<boolean> {
    d.receiveTimeout = ms;
    try {
      await d.receive();
      return false;
    } catch (e) {
      if ((e as { code?: string }).code === 'EAGAIN') return true;
      throw e;
    }
  }

  /** Log lines of a daemon about one peer identity. */
  const linesAbout = (log: string, id: string) =>
    readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => l.includes(`"peer":"${id}"`));

  /** A registration without a token proof: a fresh connection sending it is answered (refused). */
  const unprovenRegistration = (target: 'GCS' | 'node') =>
    target === 'GCS'
      ? encodeMessage({ registerNode: { node: { nodeId: 'intruder' } } })
      : encodeMessage({ registerWorker: { workerId: 'intruder', kind: 'driver', pid: 1 } });

  for (const target of ['GCS', 'node'] as const) {
    it(`${target}: garbage, an unknown type, another version, an oversized frame → ErrorReply, one log line, connection closed`, async () => {
      const { endpoint, log } = targets()[target];
      for (const bad of BAD) {
        const id = `bad-${target}-${bad.name}-${tag}`;
        const d = dealer(endpoint, id);
        await d.send(bad.frames());
        const reply = await errorReply(d);
        expect(reply, `${target} ${bad.name}`).toMatchObject({ code: bad.code });
        expect(reply.message, `${target} ${bad.name}`).toMatch(bad.message);
        const [line] = await until(
          () => {
            const l = linesAbout(log, id);
            return l.length > 0 && l;
          },
          10_000,
          `the ${target} log line about ${id}`,
        );
        expect(line).toContain(reply.message.replaceAll('"', '\\"'));
        expect(line).toContain('the connection is closed');

        // The connection is closed: the same bad message and an unproven registration get no answer
        // (a fresh connection sending that registration is answered, so the silence means something).
        const control = dealer(endpoint, `control-${target}-${bad.name}-${tag}`);
        await control.send(unprovenRegistration(target));
        expect((await errorReply(control)).code).toBe('ERROR_CODE_AUTH_FAILED');
        await d.send(bad.frames());
        await d.send(unprovenRegistration(target));
        expect(await nothingWithin(d, 300), `${target} ${bad.name}: later messages ignored`).toBe(true);
        expect(linesAbout(log, id)).toHaveLength(1);
      }
    }, 40_000);

    it(`${target}: a message before registering → ErrorReply "register first", logged once, connection closed`, async () => {
      const { endpoint, log } = targets()[target];
      const id = `unregistered-${target}-${tag}`;
      const d = dealer(endpoint, id);
      const msg =
        target === 'GCS' ? encodeMessage({ nodeHeartbeat: { nodeId: 'nobody', seq: 1 } }) : encodeMessage({ subscribeObjects: { objectIds: ['nothing'] } });
      await d.send(msg);
      const first = await errorReply(d);
      expect(first.code).toBe('ERROR_CODE_AUTH_FAILED');
      expect(first.message).toMatch(/register first/);
      // One answer per connection: a peer that never registers cannot make the receiver queue replies.
      await d.send(msg);
      expect(await nothingWithin(d, 300), `${target}: later messages ignored`).toBe(true);
      const lines = await until(
        () => {
          const l = linesAbout(log, id);
          return l.length > 0 && l;
        },
        10_000,
        `the ${target} log line about ${id}`,
      );
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/message from an unregistered connection; refused/);
    }, 20_000);
  }

  it('the cluster still serves: both nodes alive, tasks run on the node and on the head', async () => {
    const ns = await nodes();
    expect(ns.map((n) => n.alive)).toEqual([true, true]);
    const [onNode, onHead] = await get(
      [
        whereAmI.options({ resources: { bad_node: 1 } }).remote(),
        whereAmI.options({ schedulingStrategy: { type: 'NODE_AFFINITY', nodeId: c.head.ready.nodeId, soft: false } }).remote(),
      ],
      { timeout: 20 },
    );
    expect([onNode, onHead]).toEqual([node.ready.nodeId, c.head.ready.nodeId]);
  }, 30_000);

  it('a daemon whose GCS port is taken names the port; a node whose head is unreachable names the address', async () => {
    const holder: Server = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as { port: number }).port;
    try {
      await expect(c.spawn('head', {}, { port, dashboardPort: 0 })).rejects.toThrow(`GCS port ${port} on 127.0.0.1 is already in use by another process`);
    } finally {
      await new Promise<void>((r) => holder.close(() => r()));
    }
    const nowhere = `127.0.0.1:${await freePort()}`;
    await expect(c.spawn('node', { env: { TSRAY_JOIN_TIMEOUT_MS: '1000' } }, { headAddress: nowhere })).rejects.toThrow(
      `the head at ${nowhere} is unreachable: no answer within 1 s`,
    );
  }, 30_000);
});
