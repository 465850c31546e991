/**
 * The bulk data plane's two ends in one process, on real loopback sockets, with the control link faked
 * (a direct call): a session opens, pulls go and chunks land in their places (plain on loopback, sealed
 * when asked); connections that do not prove a live session are closed without stopping the server; an
 * unreachable data port leaves the caller on the control link; a broken session re-asks what was sent on
 * it; a pull given up while its chunk arrives closes the connection (nothing more lands in its buffer).
 */
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeMessage, type EnvelopeBody, type tsray } from '@tsray/protocol';
import { resetConfig } from '../../src/config.js';
import { DataPlaneClient, type DataPlaneClientHost } from '../../src/node/data-plane-client.js';
import { FrameWriter, dataPlaneKeys, helloProof } from '../../src/node/data-plane-frames.js';
import { DataPlaneServer } from '../../src/node/data-plane-server.js';
import { until } from '../helpers/until.js';

const TOKEN = 'data-plane-test-token';
const OBJECT = randomBytes(600 * 1024);

type Holder = Pick<DataPlaneServer, 'open' | 'close'>;

/** A client whose control link to 'B' calls `holder` directly; chunks land in a copy of OBJECT's size. */
function client(holder: () => Holder, opts: { openTimeoutMs?: number } = {}) {
  const place = Buffer.alloc(OBJECT.length);
  const landed: { chunk: tsray.v1.IObjectChunk; ok: boolean }[] = [];
  const failed: tsray.v1.IPullFailed[] = [];
  const lost: string[] = [];
  const control: EnvelopeBody[] = [];
  const host: DataPlaneClientHost = {
    token: TOKEN,
    nodeId: 'C',
    sendControl: (to, body) => {
      control.push(body);
      const open = (body as { dataPlaneOpen?: tsray.v1.IDataPlaneOpen }).dataPlaneOpen;
      if (to === 'B' && open) holder().open('C', open, (answer) => c.onOpened('B', (answer as { dataPlaneOpened: tsray.v1.IDataPlaneOpened }).dataPlaneOpened));
      return true;
    },
    addressOf: () => 'tcp://127.0.0.1:1',
    chunkTarget: (_n, chunk, length) => place.subarray(Number(chunk.offset), Number(chunk.offset) + length),
    chunkLanded: (_n, chunk, ok) => void landed.push({ chunk, ok }),
    checks: () => true,
    onPullFailed: (_n, f) => void failed.push(f),
    lost: (n) => void lost.push(n),
  };
  const c: DataPlaneClient = new DataPlaneClient(host, true, opts.openTimeoutMs ?? 10_000);
  return { client: c, place, landed, failed, lost, control };
}

/** A holder of OBJECT as 'obj' (chunks of the asked range). */
function holder() {
  const served: tsray.v1.IPullObject[] = [];
  const server = new DataPlaneServer({
    token: TOKEN,
    nodeId: 'B',
    bindHost: '127.0.0.1',
    serve: (req, reply) => {
      served.push(req);
      if (req.objectId !== 'obj') return reply({ pullFailed: { objectId: req.objectId ?? '', reason: 'no copy' } }, []);
      const off = Number(req.offset);
      reply({ objectChunk: { objectId: 'obj', offset: off, total: OBJECT.length } }, [OBJECT.subarray(off, off + Number(req.length))]);
    },
  });
  return { server, served };
}

const pull = (offset: number, length: number, objectId = 'obj'): EnvelopeBody => ({ pullObject: { objectId, offset, length } });
const portOf = (s: DataPlaneServer) => (s as unknown as { port: Promise<number> }).port;
const ready = (c: DataPlaneClient) => until(() => c.stats().dataPlanePeers === 1 || undefined, 10_000, 'the data plane to B to be ready');

describe('data plane', () => {
  const open: { close(): void }[] = [];
  afterEach(() => {
    for (const o of open.splice(0)) o.close();
    delete process.env['TSRAY_SEAL_LOOPBACK'];
    resetConfig();
  });

  for (const sealed of [false, true]) {
    it(`opens a session over the control link, then pulls go and chunks land in place (${sealed ? 'sealed: TSRAY_SEAL_LOOPBACK=1' : 'plain on loopback'})`, async () => {
      if (sealed) process.env['TSRAY_SEAL_LOOPBACK'] = '1';
      resetConfig();
      const h = holder();
      const p = client(() => h.server);
      open.push(h.server, p.client);
      // The first request waits for the session it opens, then goes on it.
      expect(p.client.send('B', pull(0, 400 * 1024))).toBe(true);
      await ready(p.client);
      expect(p.client.stats().dataPlaneSealedPeers).toBe(sealed ? 1 : 0);
      expect(p.client.send('B', pull(400 * 1024, 200 * 1024))).toBe(true);
      expect(p.client.send('B', pull(0, 10, 'missing'))).toBe(true);
      await until(() => (p.landed.length === 2 && p.failed.length === 1) || undefined, 10_000, 'two chunks and a refusal');
      expect(p.landed.map((l) => l.ok)).toEqual([true, true]);
      expect(p.place.equals(OBJECT)).toBe(true);
      expect(p.control.filter((b) => 'pullObject' in b)).toEqual([]);
      expect(p.failed[0]!.objectId).toBe('missing');
      expect(h.server.stats()).toMatchObject({ dataPlaneChunks: 2, dataPlaneDropped: 0, dataPlaneSessions: 1 });
      expect(p.control.filter((b) => 'dataPlaneOpen' in b)).toHaveLength(1);
    });
  }

  it('closes connections without a live session’s key, and keeps serving its session', async () => {
    const h = holder();
    const p = client(() => h.server);
    open.push(h.server, p.client);
    p.client.send('B', pull(0, 1));
    await ready(p.client);
    const port = await portOf(h.server);
    const intruders: Socket[] = [];
    const knock = (bytes: Buffer) => {
      const s = connect({ host: '127.0.0.1', port }, () => s.write(bytes));
      s.on('error', () => undefined);
      intruders.push(s);
    };
    knock(Buffer.from('GET / HTTP/1.1\r\nHost: example.invalid\r\n\r\n')); // not a hello (its first 36 bytes read as one)
    knock(randomBytes(36)); // a random session and proof
    const idOf = (id: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(id, 0);
      return b;
    };
    const used = [...(h.server as unknown as { sessions: Map<number, { keys: ReturnType<typeof dataPlaneKeys> }> }).sessions][0]!;
    knock(Buffer.concat([idOf(used[0]), helloProof(used[1].keys, 'client', used[0], false)])); // the right proof, but the session is in use
    // A fresh session of another peer X (opened as over its control link): forged proofs are refused ...
    const nonceX = randomBytes(32);
    const opened = await new Promise<tsray.v1.IDataPlaneOpened>((r) =>
      h.server.open('X', { nonce: nonceX }, (a) => r((a as { dataPlaneOpened: tsray.v1.IDataPlaneOpened }).dataPlaneOpened)),
    );
    const keysX = dataPlaneKeys(TOKEN, nonceX, opened.nonce!, 'X', 'B');
    knock(Buffer.concat([idOf(opened.session!), randomBytes(32)]));
    knock(Buffer.concat([idOf(opened.session!), helloProof(keysX, 'client', opened.session!, true)])); // claims sealing on loopback
    await until(() => h.server.stats().dataPlaneDropped === 5 || undefined, 10_000, 'the five intruders to be closed');
    // ... and the right one is answered with the holder's proof.
    const answer = await new Promise<Buffer>((r) => {
      const s = connect({ host: '127.0.0.1', port }, () =>
        s.write(Buffer.concat([idOf(opened.session!), helloProof(keysX, 'client', opened.session!, false)])),
      );
      s.once('data', (d: Buffer) => r(d));
      intruders.push(s);
    });
    expect(answer.equals(helloProof(keysX, 'server', opened.session!, false))).toBe(true);
    expect(h.server.stats().dataPlaneDropped).toBe(5);
    await until(() => intruders.slice(0, 5).every((s) => s.destroyed || s.readableEnded) || undefined, 10_000, 'the intruders’ connections to end');
    for (const s of intruders) s.destroy();
    expect(p.client.send('B', pull(0, 1000))).toBe(true);
    await until(() => p.landed.length === 2 || undefined, 10_000, 'a chunk after the intruders');
    expect(p.place.subarray(0, 1000).equals(OBJECT.subarray(0, 1000))).toBe(true);
  });

  it('an unreachable data port: the session is given up, the waiting request and later ones go on the control link', async () => {
    const h = holder();
    const p = client(() => h.server, { openTimeoutMs: 300 });
    open.push(h.server, p.client);
    // A port nothing listens on: the server answers with its real port, so point the client elsewhere.
    const onOpened = p.client.onOpened.bind(p.client);
    p.client.onOpened = (n, m) => onOpened(n, { ...m, port: 9 });
    expect(p.client.send('B', pull(0, 1))).toBe(true); // waits for the session
    const state = () => (p.client as unknown as { channels: Map<string, { state: string }> }).channels.get('B')?.state;
    await until(() => state() === 'off' || undefined, 10_000, 'the session to be given up');
    expect(p.control.filter((b) => 'pullObject' in b)).toEqual([pull(0, 1)]);
    expect(p.client.send('B', pull(0, 2))).toBe(false);
    expect(p.lost).toEqual([]); // nothing was sent on it
  });

  it('a session that breaks after use re-asks what was sent on it; later requests take the control link', async () => {
    const h = holder();
    const p = client(() => h.server);
    open.push(h.server, p.client);
    p.client.send('B', pull(0, 1));
    await ready(p.client);
    h.server.nodeDied('C'); // the holder drops the session and its connection
    await until(() => p.lost.length === 1 || undefined, 10_000, 'the client to see the break');
    expect(p.lost).toEqual(['B']);
    expect(p.client.send('B', pull(0, 10))).toBe(false);
  });

  it('a pull given up while its chunk is arriving closes the connection (no more bytes land in its buffer)', async () => {
    // A holder that proves the session and then sends one chunk's head and 10 of its 65,536 bytes.
    const fake = createServer((socket) => {
      socket.once('data', () => {
        socket.write(helloProof(keys!, 'server', 5, false));
        const f = new FrameWriter(undefined).frame(
          encodeMessage({ objectChunk: { objectId: 'obj', offset: 0, total: OBJECT.length } })[0]!,
          Buffer.alloc(65_536),
        );
        socket.write(Buffer.concat([f.head, OBJECT.subarray(0, 10)]));
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    let keys: ReturnType<typeof dataPlaneKeys> | undefined;
    const serverNonce = randomBytes(32);
    const fakeHolder: Holder = {
      open: (_peer, req, reply) => {
        keys = dataPlaneKeys(TOKEN, req.nonce!, serverNonce, 'C', 'B');
        reply({ dataPlaneOpened: { nonce: serverNonce, session: 5, port: (fake.address() as { port: number }).port } });
      },
      close: () => fake.close(),
    };
    const p = client(() => fakeHolder);
    open.push(fakeHolder, p.client);
    let targeted = 0;
    const host = (p.client as unknown as { host: DataPlaneClientHost }).host;
    const target = host.chunkTarget.bind(host);
    host.chunkTarget = (n, c, len) => (targeted++, target(n, c, len));
    p.client.send('B', pull(0, 65_536));
    await until(() => targeted === 1 || undefined, 10_000, 'the chunk to start arriving');
    p.client.abandon('B', 'other-object'); // another pull's: nothing happens
    expect(p.client.stats().dataPlanePeers).toBe(1);
    p.client.abandon('B', 'obj');
    expect(p.client.stats().dataPlanePeers).toBe(0);
    expect(p.lost).toEqual(['B']);
    expect(p.landed).toEqual([]);
    expect(p.client.send('B', pull(0, 1))).toBe(false);
  });
});
