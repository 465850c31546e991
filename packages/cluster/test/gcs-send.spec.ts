/**
 * The GCS in this process, hit by many connections at once: every reply goes through one send queue
 * (zeromq.js allows one send in flight per socket), so a burst of bad messages is answered one
 * ErrorReply each while the GCS keeps receiving, and nothing ends its receive loop.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';
import { decodeMessage, encodeMessage, tsray } from '@tsray/protocol';
import { curveClientOptions } from '@tsray/core/internal';
import { GcsServer } from '../src/gcs.js';

const TOKEN = 'unit-token-0123456789';

const PEERS = 300;

describe('GCS send path', () => {
  let gcs: GcsServer;
  const sockets: zmq.Dealer[] = [];

  beforeAll(async () => {
    gcs = await GcsServer.start({ host: '127.0.0.1', port: 0, token: TOKEN });
  });

  afterAll(async () => {
    for (const s of sockets) s.close();
    await gcs.close();
  });

  function dealer(): zmq.Dealer {
    // No routingId: libzmq names the connection with 5 binary bytes, as for a raw TCP peer.
    const d = new zmq.Dealer({ linger: 0, receiveTimeout: 10_000, ...curveClientOptions(`tcp://${gcs.address}`, TOKEN) });
    d.connect(`tcp://${gcs.address}`);
    sockets.push(d);
    return d;
  }

  async function reply(d: zmq.Dealer): Promise<string> {
    const { kind, envelope } = decodeMessage(await d.receive());
    expect(kind).toBe('error');
    return tsray.v1.ErrorCode[envelope.error!.code!];
  }

  it(`${PEERS} connections sending garbage and unregistered messages at once each get one ErrorReply`, async () => {
    const peers = Array.from({ length: PEERS }, () => dealer());
    await Promise.all(
      peers.map((d, i) =>
        d.send(
          i % 2 === 0
            ? [Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])]
            : encodeMessage({ nodeHeartbeat: { nodeId: 'nobody', seq: i } }),
        ),
      ),
    );
    const codes = await Promise.all(peers.map((d) => reply(d)));
    expect(codes.filter((c, i) => c !== (i % 2 === 0 ? 'ERROR_CODE_MALFORMED' : 'ERROR_CODE_AUTH_FAILED'))).toEqual([]);

    // Still receiving: a fresh connection is answered.
    const fresh = dealer();
    await fresh.send(encodeMessage({ nodeHeartbeat: { nodeId: 'nobody', seq: 0 } }));
    expect(await reply(fresh)).toBe('ERROR_CODE_AUTH_FAILED');
  }, 30_000);
});
