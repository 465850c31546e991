/**
 * The decoders with CURVE off (TSRAY_TRANSPORT_CURVE=0, where a plain ZMTP peer reaches them; with
 * CURVE on, the default, such a peer fails the handshake: transport-security.spec, fuzz.spec).
 * Unauthenticated bytes against a real head and node (separate processes): five rounds of random byte
 * strings over a few hundred raw TCP connections to the GCS port and to the node's tcp port. Some
 * connections speak a valid ZMTP 3.0 handshake first (a DEALER with no identity, so the receiver names
 * it with 5 binary bytes) and then send the strings as frames, so the garbage reaches the message
 * decoders and the error replies race the GCS's own broadcasts on the same socket. Afterwards both
 * daemons still run, a task runs on each node, `tsray status` shows both nodes alive, the daemons'
 * memory has not grown by more than 64 MiB, and the 'rejected' log lines name binary peers in hex
 * and are rate-limited.
 */
import { execFile } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeMessage } from '@tsray/protocol';
import { get, init, shutdown } from '@tsray/core';
import { TestCluster, until, type DaemonProc } from './fixtures/cluster-harness.js';
import { whereAmI } from './fixtures/fns.js';
import { prng, rssKiB } from './fixtures/fuzzing.js';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

const ROUNDS = 5;
const STRINGS_PER_ROUND = 10_000;
const CONNECTIONS_PER_ROUND = 300;
const MAX_STRING_BYTES = 4096;
/** Connections open at once. */
const PARALLEL = 8;
/** A connection still open this long after it opened is destroyed (keeps a round bounded in time). */
const CONNECTION_DEADLINE_MS = 1_000;
/** Text of the ErrorReply a receiver sends to a ZMTP connection whose first message is garbage or unregistered. */
const ERROR_REPLY = /does not decode|register first|protocol version|message type|over the limit/;
const RSS_GROWTH_LIMIT_KIB = 64 * 1024;

/**
 * A ZMTP 3.0 greeting (NULL mechanism, as client) and a READY command saying Socket-Type DEALER and
 * no Identity: libzmq accepts the handshake and hands what follows to the message decoder.
 */
function zmtpHandshake(): Buffer {
  const greeting = Buffer.alloc(64);
  greeting[0] = 0xff;
  greeting[9] = 0x7f;
  greeting[10] = 3;
  greeting[11] = 0;
  greeting.write('NULL', 12, 'ascii');
  const prop = (name: string, value: string) => {
    const v = Buffer.from(value);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(v.length);
    return Buffer.concat([Buffer.from([name.length]), Buffer.from(name), len, v]);
  };
  const body = Buffer.concat([Buffer.from([5]), Buffer.from('READY'), prop('Socket-Type', 'DEALER')]);
  return Buffer.concat([greeting, Buffer.from([0x04, body.length]), body]);
}

/** One ZMTP frame around `payload` (`more`: another frame of the same message follows). */
function zmtpFrame(payload: Buffer, more: boolean): Buffer {
  if (payload.length <= 255) return Buffer.concat([Buffer.from([more ? 0x01 : 0x00, payload.length]), payload]);
  const head = Buffer.alloc(9);
  head[0] = more ? 0x03 : 0x02;
  head.writeBigUInt64BE(BigInt(payload.length), 1);
  return Buffer.concat([head, payload]);
}

/** What one connection writes: raw random strings, or (zmtp) the handshake and the strings as frames. */
function connectionWrites(rand: () => number, count: number, zmtp: boolean): Buffer[] {
  const strings: Buffer[] = [];
  for (let i = 0; i < count; i++) strings.push(randomFillSync(Buffer.alloc(Math.floor(rand() * (MAX_STRING_BYTES + 1)))));
  if (!zmtp) return strings;
  // Mostly garbage messages of 1-3 frames; now and then a well-formed message from a peer that never registered.
  const out = [zmtpHandshake()];
  for (let i = 0; i < strings.length; i++) {
    if (rand() < 0.1)
      out.push(...encodeMessage({ nodeHeartbeat: { nodeId: 'nobody', seq: i } }).map((f, j, all) => zmtpFrame(Buffer.from(f), j < all.length - 1)));
    out.push(zmtpFrame(strings[i]!, i < strings.length - 1 && rand() < 0.3));
  }
  return out;
}

/**
 * Open a connection, write everything, close; resolves when the socket is gone (errors are expected)
 * with whether the receiver answered. With `waitForReply` (a ZMTP connection) it waits for the
 * ErrorReply (or the deadline) before it closes: libzmq drops a reply to a connection already gone.
 */
function sendOnce(port: number, writes: Buffer[], waitForReply: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    const deadline = setTimeout(() => s.destroy(), CONNECTION_DEADLINE_MS);
    let received = '';
    let answered = false;
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      if (!waitForReply || received.length > 64 * 1024) return;
      received += d.toString('latin1');
      if (ERROR_REPLY.test(received)) {
        answered = true;
        s.destroy();
      }
    });
    s.on('close', () => {
      clearTimeout(deadline);
      resolve(answered);
    });
    s.on('connect', () => {
      for (const w of writes) s.write(w);
      if (!waitForReply) s.end();
    });
  });
}

/**
 * One round against `port`: STRINGS_PER_ROUND strings over CONNECTIONS_PER_ROUND connections (every
 * third one ZMTP), PARALLEL at a time. Resolves with how many of the ZMTP connections that waited for
 * an answer got an ErrorReply.
 */
async function round(port: number, seed: number): Promise<number> {
  const rand = prng(seed);
  const perConnection = STRINGS_PER_ROUND / CONNECTIONS_PER_ROUND;
  let next = 0;
  let sent = 0;
  let answered = 0;
  const lane = async () => {
    while (next < CONNECTIONS_PER_ROUND) {
      const i = next++;
      const count = i === CONNECTIONS_PER_ROUND - 1 ? STRINGS_PER_ROUND - sent : Math.round(perConnection * (i + 1)) - sent;
      sent += count;
      const zmtp = i % 3 === 0;
      // Most connections close right after their writes (bursts of rejections); a few wait for the answer.
      const waitForReply = i % 30 === 0;
      if (await sendOnce(port, connectionWrites(rand, count, zmtp), waitForReply)) answered++;
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, lane));
  return answered;
}

/** The daemons of this test run without CURVE (and so do the CLI calls that reach them over tcp). */
const PLAIN = { TSRAY_TRANSPORT_CURVE: '0' };

const portOf = (address: string) => Number(/:(\d+)$/.exec(address)![1]);

describe('random bytes to the GCS and to a node tcp port (real head + node)', () => {
  const c = new TestCluster();
  let node: DaemonProc;

  beforeAll(async () => {
    await c.startHead({ numCpus: 1, env: PLAIN });
    node = await c.addNode({ numCpus: 1, resources: { garbage_node: 1 }, env: PLAIN });
    c.attachHere();
  }, 40_000);

  afterAll(async () => {
    await shutdown();
    c.detachHere();
    await c.stop();
  }, 30_000);

  it('five rounds of random strings (raw and inside ZMTP frames); the cluster serves afterwards', async () => {
    const daemons = { head: c.head, node };
    const before = { head: rssKiB(c.head.proc.pid!), node: rssKiB(node.proc.pid!) };
    const ports = { GCS: portOf(c.gcsAddress), node: portOf(node.ready.nodeAddress!) };
    const answered = { head: 0, node: 0 };
    for (let r = 0; r < ROUNDS; r++) {
      answered.head += await round(ports.GCS, 0x9e3779b9 + r);
      answered.node += await round(ports.node, 0x85ebca6b + r);
    }

    for (const [name, d] of Object.entries(daemons)) expect(d.proc.exitCode, `${name} daemon still running`).toBeNull();

    await init({ address: 'auto', namespace: 'garbage' });
    const [onNode, onHead] = await get(
      [
        whereAmI.options({ resources: { garbage_node: 1 } }).remote(),
        whereAmI.options({ schedulingStrategy: { type: 'NODE_AFFINITY', nodeId: c.head.ready.nodeId, soft: false } }).remote(),
      ],
      { timeout: 20 },
    );
    expect([onNode, onHead]).toEqual([node.ready.nodeId, c.head.ready.nodeId]);

    const { stdout } = await run(process.execPath, [CLI, 'status'], { env: { ...c.env(), ...PLAIN }, timeout: 30_000 });
    expect(stdout).toMatch(/Nodes: 2 alive, 0 dead/);

    const after = { head: rssKiB(c.head.proc.pid!), node: rssKiB(node.proc.pid!) };
    expect(after.head - before.head, `head RSS growth (KiB), ${before.head} -> ${after.head}`).toBeLessThan(RSS_GROWTH_LIMIT_KIB);
    expect(after.node - before.node, `node RSS growth (KiB), ${before.node} -> ${after.node}`).toBeLessThan(RSS_GROWTH_LIMIT_KIB);

    // The garbage reached the decoders: ZMTP connections got ErrorReplies (sent on the socket the GCS
    // also broadcasts on), both daemons logged rejections with binary peer ids escaped, and the lines
    // are rate-limited (far fewer than the connections rejected, the rest counted in a summary).
    const zmtpConnections = ROUNDS * Math.ceil(CONNECTIONS_PER_ROUND / 3);
    for (const [name, d] of Object.entries(daemons)) {
      expect(answered[name as keyof typeof answered], `${name}: ZMTP connections answered with an ErrorReply`).toBeGreaterThan(0);
      const rejected = await until(
        () => {
          const l = readFileSync(d.errLog, 'utf8')
            .split('\n')
            .filter((x) => x.includes('rejected a message'));
          return l.length > 0 && l;
        },
        10_000,
        `'rejected' lines in the ${name} log`,
      );
      const peers = rejected.map((l) => String((JSON.parse(l) as { peer: unknown }).peer));
      expect(
        peers.filter((p) => !/^[\x20-\x7e]+$/.test(p)),
        `${name}: peer ids printable`,
      ).toEqual([]);
      expect(
        peers.some((p) => /^0x[0-9a-f]+/.test(p)),
        `${name}: binary peer ids in hex`,
      ).toBe(true);
      expect(rejected.length, `${name}: rejected lines are rate-limited`).toBeLessThan(zmtpConnections / 2);
      await until(() => /\d+ more rejected connections? not logged/.test(readFileSync(d.errLog, 'utf8')), 15_000, `the ${name}'s count of lines not logged`);
    }
  }, 180_000);
});
