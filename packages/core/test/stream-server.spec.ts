/**
 * The node's unix stream socket beside its ROUTER (RouterServer.listenStream, stream-server.ts): a
 * worker's messages take the ROUTER's receive path and replies find its connection; one connection per
 * routing id, no DEALER speaking for a stream connection, small messages until registered, and
 * connections that break the framing closed while the others are served.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeMessage, type DecodedMessage } from '@tsray/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';
import { RouterServer, UNREGISTERED_MAX_MESSAGE_BYTES } from '../src/router-server.js';
import { streamHello, streamMessage } from '../src/stream-frames.js';
import { StreamTransport } from '../src/worker/channel-transport.js';

let dir: string;
let server: RouterServer;
let got: { id: string; kind: string; viaStream: boolean }[];
let registered: Set<string>;
let claimed: Set<string>;
let waiters: (() => void)[];
const cleanups: (() => void)[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tsray-stream-'));
  got = [];
  waiters = [];
  registered = new Set();
  claimed = new Set();
  server = new RouterServer({
    where: 'test',
    registered: (identity) => (registered.has(identity.toString()) ? { kind: 'worker' } : undefined),
    claimed: (id) => claimed.has(id),
    onMessage: (identity: Buffer, m: DecodedMessage, viaStream: boolean) => {
      got.push({ id: identity.toString(), kind: m.kind, viaStream });
      for (const w of waiters.splice(0)) w();
    },
  });
  await server.bind(`ipc://${join(dir, 'r.sock')}`);
  await server.listenStream(join(dir, 'r.wsock'));
  server.start();
});

afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Resolves once `n` messages arrived in all. */
function received(n: number): Promise<void> {
  return new Promise((resolve) => {
    const check = () => (got.length >= n ? resolve() : waiters.push(check));
    check();
  });
}

function heartbeat(): Buffer[] {
  return encodeMessage({ heartbeat: {} });
}

/** A raw connection to the stream socket; resolves `closed` when the server closes it. */
function raw(): { socket: Socket; closed: Promise<void> } {
  const socket = createConnection(join(dir, 'r.wsock'));
  cleanups.push(() => socket.destroy());
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  socket.on('error', () => undefined);
  return { socket, closed };
}

describe('the stream socket beside a ROUTER', () => {
  it('lets at most 64 connections wait for their hello; a worker still gets in; close() ends the waiting ones', async () => {
    const waiting = Array.from({ length: 64 }, () => raw());
    await Promise.all(waiting.map((w) => new Promise((r) => w.socket.once('connect', r))));
    const extra = raw();
    await extra.closed;
    expect(server.streamRefused).toBe(1);
    // A waiting connection that leaves makes room again.
    waiting[0]!.socket.destroy();
    await waiting[0]!.closed;
    registered.add('w3');
    const t = new StreamTransport('w3', join(dir, 'r.wsock'));
    cleanups.push(() => t.close());
    t.send(heartbeat());
    await received(1);
    await server.close();
    await Promise.all(waiting.slice(1).map((w) => w.closed));
  });

  it('delivers a worker’s messages as the ROUTER’s (viaStream) and sends replies back on its connection', async () => {
    registered.add('w1');
    const t = new StreamTransport('w1', join(dir, 'r.wsock'));
    cleanups.push(() => t.close());
    const replies: string[] = [];
    const serving = t.serve((frames) => replies.push(frames[0]!.toString('hex')));
    t.send(heartbeat());
    await received(1);
    expect(got).toEqual([{ id: 'w1', kind: 'heartbeat', viaStream: true }]);
    server.send(Buffer.from('w1'), { heartbeat: {} });
    await new Promise<void>((r) => {
      const poll = () => (replies.length > 0 ? r() : setImmediate(poll));
      poll();
    });
    expect(replies).toEqual([heartbeat()[0]!.toString('hex')]);
    t.close();
    await serving;
  });

  it('refuses a second connection with a live id and an id the owner has claimed; the first keeps working', async () => {
    registered.add('w1');
    const t = new StreamTransport('w1', join(dir, 'r.wsock'));
    cleanups.push(() => t.close());
    t.send(heartbeat());
    await received(1);
    const twin = raw();
    twin.socket.write(Buffer.concat([streamHello('w1'), ...streamMessage(heartbeat())]));
    await twin.closed;
    claimed.add('node-peer');
    const taker = raw();
    taker.socket.write(Buffer.concat([streamHello('node-peer'), ...streamMessage(heartbeat())]));
    await taker.closed;
    t.send(heartbeat());
    await received(2);
    expect(got.map((g) => g.id)).toEqual(['w1', 'w1']);
    expect(server.streamRefused).toBe(2);
  });

  it('ignores a DEALER that uses the routing id of a stream connection', async () => {
    registered.add('w1');
    registered.add('other');
    const t = new StreamTransport('w1', join(dir, 'r.wsock'));
    cleanups.push(() => t.close());
    t.send(heartbeat());
    await received(1);
    const d = new zmq.Dealer({ routingId: 'w1', linger: 0 });
    const o = new zmq.Dealer({ routingId: 'other', linger: 0 });
    cleanups.push(
      () => d.close(),
      () => o.close(),
    );
    d.connect(`ipc://${join(dir, 'r.sock')}`);
    o.connect(`ipc://${join(dir, 'r.sock')}`);
    await d.send(heartbeat());
    await o.send(heartbeat()); // after d's on the same ROUTER: once it arrived, d's was read and dropped
    await received(2);
    expect(got.map((g) => [g.id, g.viaStream])).toEqual([
      ['w1', true],
      ['other', false],
    ]);
  });

  it('closes connections that send garbage, no hello, or a big message before registering; others are served', async () => {
    const garbage = raw();
    garbage.socket.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    await garbage.closed;
    const big = raw();
    big.socket.write(Buffer.concat([streamHello('w9'), ...streamMessage([Buffer.alloc(UNREGISTERED_MAX_MESSAGE_BYTES + 1)])]));
    await big.closed;
    expect(got).toEqual([]);
    registered.add('w2');
    const t = new StreamTransport('w2', join(dir, 'r.wsock'));
    cleanups.push(() => t.close());
    t.send(heartbeat());
    await received(1);
    expect(got).toEqual([{ id: 'w2', kind: 'heartbeat', viaStream: true }]);
    expect(server.streamRefused).toBe(2);
  });
});
