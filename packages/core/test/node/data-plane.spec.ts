/**
 * The bulk data plane's two ends in one process, on real loopback sockets, with the control link faked
 * (a direct call): a session opens, pulls go and chunks come back sealed; forged, replayed and oversized
 * messages are dropped without stopping the server; an unreachable data port leaves the caller on the
 * control link; a broken session re-asks what was sent on it.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';
import type { EnvelopeBody, tsray } from '@tsray/protocol';
import { DataPlaneClient, type DataPlaneClientHost } from '../../src/node/data-plane-client.js';
import { DataPlaneServer } from '../../src/node/data-plane-server.js';
import { until } from '../helpers/until.js';

const TOKEN = 'data-plane-test-token';
const OBJECT = randomBytes(600 * 1024);

/** A server holding OBJECT as 'obj' and a client whose control link to 'B' calls the server directly. */
function pair(opts: { port?: number; openTimeoutMs?: number } = {}) {
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
  const got: { chunk: tsray.v1.IObjectChunk; bytes: Buffer }[] = [];
  const failed: tsray.v1.IPullFailed[] = [];
  const lost: string[] = [];
  const control: EnvelopeBody[] = [];
  const host: DataPlaneClientHost = {
    token: TOKEN,
    nodeId: 'C',
    sendControl: (to, body) => {
      control.push(body);
      const open = (body as { dataPlaneOpen?: tsray.v1.IDataPlaneOpen }).dataPlaneOpen;
      if (to === 'B' && open)
        server.open('C', open, (answer) => client.onOpened('B', (answer as { dataPlaneOpened: tsray.v1.IDataPlaneOpened }).dataPlaneOpened));
      return true;
    },
    addressOf: () => `tcp://127.0.0.1:${opts.port ?? 1}`,
    onChunk: (_n, chunk, payload) => {
      const bytes = Buffer.alloc(payload.length);
      expect(payload.openInto(bytes)).toBe(true);
      got.push({ chunk, bytes });
    },
    onPullFailed: (_n, f) => failed.push(f),
    lost: (n) => lost.push(n),
  };
  const client: DataPlaneClient = new DataPlaneClient(host, true, opts.openTimeoutMs ?? 10_000);
  return { server, client, served, got, failed, lost, control };
}

const pull = (offset: number, length: number, objectId = 'obj'): EnvelopeBody => ({ pullObject: { objectId, offset, length } });

describe('data plane', () => {
  const open: { close(): void }[] = [];
  afterEach(() => {
    for (const o of open.splice(0)) o.close();
  });

  it('opens a session over the control link, then pulls go and sealed chunks come back on the data socket', async () => {
    const p = pair();
    open.push(p.server, p.client);
    // The first request waits for the session it opens, then goes on it.
    expect(p.client.send('B', pull(0, 400 * 1024))).toBe(true);
    await until(() => p.client.stats().dataPlanePeers === 1 || undefined, 10_000, 'the data plane to B to be ready');
    expect(p.client.send('B', pull(400 * 1024, 200 * 1024))).toBe(true);
    expect(p.client.send('B', pull(0, 10, 'missing'))).toBe(true);
    await until(() => (p.got.length === 2 && p.failed.length === 1) || undefined, 10_000, 'two chunks and a refusal');
    expect(p.control.filter((b) => 'pullObject' in b)).toEqual([]);
    expect(Buffer.concat(p.got.map((g) => g.bytes)).equals(OBJECT)).toBe(true);
    expect(p.failed[0]!.objectId).toBe('missing');
    expect(p.server.stats()).toMatchObject({ dataPlaneChunks: 2, dataPlaneDropped: 0, dataPlaneSessions: 1 });
    expect(p.control.filter((b) => 'dataPlaneOpen' in b)).toHaveLength(1);
  });

  it('drops unsealed, forged, replayed and oversized messages and keeps serving its session', async () => {
    const p = pair();
    open.push(p.server, p.client);
    p.client.send('B', pull(0, 1));
    await until(() => p.client.stats().dataPlanePeers === 1 || undefined, 10_000, 'the data plane to be ready');
    // Learn the port from the session the client opened (the server answered it over the fake control link).
    const port = (p.server as unknown as { port: Promise<number> }).port;
    const intruder = new zmq.Dealer({ linger: 0 });
    open.push(intruder);
    intruder.connect(`tcp://127.0.0.1:${await port}`);
    const header = Buffer.alloc(44);
    await intruder.send([Buffer.from('plain text request')]);
    await intruder.send([header, Buffer.from('a forged sealed frame')]);
    await intruder.send([header, randomBytes(128 * 1024)]); // over the 64 KiB request limit: the connection is dropped
    await until(() => p.server.stats().dataPlaneDropped >= 2 || undefined, 10_000, 'the forged messages to be dropped');
    expect(p.served).toHaveLength(1); // the request that opened the session, nothing of the intruder's
    expect(p.client.send('B', pull(0, 1000))).toBe(true);
    await until(() => p.got.length === 2 || undefined, 10_000, 'a chunk after the intruder');
    expect(p.got[1]!.bytes.equals(OBJECT.subarray(0, 1000))).toBe(true);
  });

  it('an unreachable data port: no session within the timeout, the waiting request and later ones go on the control link', async () => {
    // A port nothing listens on: the server answers with its real port, so point the client elsewhere.
    const p = pair({ openTimeoutMs: 300 });
    open.push(p.server, p.client);
    const onOpened = p.client.onOpened.bind(p.client);
    p.client.onOpened = (n, m) => onOpened(n, { ...m, port: 9 });
    expect(p.client.send('B', pull(0, 1))).toBe(true); // waits for the session
    await until(
      () => (p.client as unknown as { channels: Map<string, { state: string }> }).channels.get('B')?.state === 'off' || undefined,
      10_000,
      'the session to be given up',
    );
    expect(p.control.filter((b) => 'pullObject' in b)).toEqual([pull(0, 1)]);
    expect(p.client.send('B', pull(0, 2))).toBe(false);
    expect(p.lost).toEqual([]); // nothing was sent on it
  });

  it('a session that breaks after use re-asks what was sent on it', async () => {
    const p = pair();
    open.push(p.server, p.client);
    p.client.send('B', pull(0, 1));
    await until(() => p.client.stats().dataPlanePeers === 1 || undefined, 10_000, 'the data plane to be ready');
    p.server.nodeDied('C'); // the server forgets the session: the next request is dropped there
    expect(p.client.send('B', pull(0, 10))).toBe(true);
    await until(() => p.server.stats().dataPlaneDropped === 1 || undefined, 10_000, 'the request to be dropped');
    // The holder side of a broken session answers nothing; a message that does not open breaks it on the client.
    (p.client as unknown as { onMessage(n: string, c: unknown, f: Buffer[]): void }).onMessage(
      'B',
      (p.client as unknown as { channels: Map<string, unknown> }).channels.get('B'),
      [Buffer.alloc(44), Buffer.from('garbage')],
    );
    expect(p.lost).toEqual(['B']);
    expect(p.client.send('B', pull(0, 10))).toBe(false);
  });
});
