/**
 * The CURVE keys derived from a token (pinned: python/tests/test_curve.py checks the same values, so
 * the TypeScript and Python sides derive the same keys) and a ROUTER that is plain on ipc and CURVE on
 * tcp, admitting only its cluster's members.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';
import { clusterCurveKeys, curveClientOptions, makeCurveServer, onCurveRefused, z85Encode } from '../src/curve.js';
import { RouterServer } from '../src/router-server.js';

/** The keys of the token 'tok' (python/tests/test_curve.py pins the same). */
const TOK_KEYS = {
  serverPublic: 'K(v8{(no97m&z[V8NmC5!z4hArgD}5k9-Xzp](/}',
  serverSecret: 'G/zHlQzy5(6N5?Nw].et<*<VJa7h3eofXny/lbz9',
  memberPublic: 'El3]fKd%yNgN4E-iC}BvMxK&ZbgI4(s&2Ir1}S$4',
  memberSecret: 'qYp=zQ*)DplhjJ]ldMukDFgO{@Q]Y}}>{XXIBK<}',
};

describe('cluster CURVE keys', () => {
  it('Z85 encodes as RFC 32 says', () => {
    expect(z85Encode(Buffer.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]))).toBe('HelloWorld');
  });

  it('derives the same keys as the Python side, different per token, public keys matching ZeroMQ', () => {
    expect(clusterCurveKeys('tok')).toEqual(TOK_KEYS);
    expect(clusterCurveKeys('other').serverPublic).not.toBe(TOK_KEYS.serverPublic);
    // A generated ZeroMQ keypair has the same shape (40 Z85 characters).
    expect(zmq.curveKeyPair().publicKey).toHaveLength(TOK_KEYS.serverPublic.length);
  });

  it('one ROUTER: plain on ipc, CURVE on tcp; a member is served, another cluster’s client is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsray-curve-'));
    const server = new RouterServer({ where: 'test', token: 'tok', registered: () => ({ ok: true }), onMessage: () => undefined });
    const sockets: zmq.Dealer[] = [];
    try {
      const ipc = await server.bind(`ipc://${join(dir, 's.sock')}`);
      const tcp = await server.bind('tcp://127.0.0.1:0');
      server.start();
      const raw = Buffer.from([0, 0]); // not a tsray message: the server rejects it, which is enough to see it arrived
      for (const [id, endpoint, token] of [
        ['plain-ipc', ipc, undefined],
        ['member-tcp', tcp, 'tok'],
      ] as const) {
        const d = new zmq.Dealer({ routingId: id, linger: 0, ...curveClientOptions(endpoint, token) });
        sockets.push(d);
        d.connect(endpoint);
        await d.send(raw);
        await d.receive(); // the ErrorReply: the message reached the server's decoder
      }
      const intruder = new zmq.Dealer({ routingId: 'intruder', linger: 0, ...curveClientOptions(tcp, 'other') });
      const plain = new zmq.Dealer({ routingId: 'plain-tcp', linger: 0 });
      sockets.push(intruder, plain);
      const refused = [new Promise<string>((r) => onCurveRefused(intruder, r)), new Promise<string>((r) => onCurveRefused(plain, r))];
      intruder.connect(tcp);
      plain.connect(tcp);
      await intruder.send(raw);
      await plain.send(raw);
      const [why, whyPlain] = await Promise.all(refused);
      expect(why).toBe('');
      expect(whyPlain).toMatch(/one side runs without CURVE/);
    } finally {
      for (const s of sockets) s.close();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('a CURVE server made right after the last one closed gets the ZAP handler (the endpoint is freed asynchronously)', async () => {
    // The flake this fixes (CI, peer-connection.spec.ts): release() closes the handler's socket, ZeroMQ
    // frees the inproc endpoint a moment later, and the next handler's bind failed with EADDRINUSE.
    for (let i = 0; i < 30; i++) {
      const router = new zmq.Router({ linger: 0 });
      const zap = makeCurveServer(router, `tok-${i}`);
      await zap.ready;
      router.close();
      zap.release();
    }
  });

  it('a plain client whose handshakes fail is told the two sides differ in CURVE, whichever error ZeroMQ reports', async () => {
    // A server that resets every connection: ZeroMQ reports "other" handshake errors (not the protocol
    // error a CURVE server's greeting gives), as it does when a CURVE server drops a plain client
    // before the client reads its greeting.
    const resetter = createServer((conn) => conn.destroy());
    await new Promise<void>((r) => resetter.listen(0, '127.0.0.1', r));
    const address = resetter.address();
    const endpoint = `tcp://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    const plain = new zmq.Dealer({ linger: 0 });
    const curve = new zmq.Dealer({ linger: 0, ...curveClientOptions(endpoint, 'tok') });
    try {
      const refused = [new Promise<string>((r) => onCurveRefused(plain, r)), new Promise<string>((r) => onCurveRefused(curve, r))];
      plain.connect(endpoint);
      curve.connect(endpoint);
      const [whyPlain, whyCurve] = await Promise.all(refused);
      expect(whyPlain).toMatch(/one side runs without CURVE/);
      expect(whyCurve).toBe(''); // a CURVE client cannot tell a wrong token from a dropped handshake
    } finally {
      plain.close();
      curve.close();
      resetter.close();
    }
  });
});
