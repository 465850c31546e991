/**
 * PeerConnection's bounded connect: a peer that cannot be reached is reported (naming node and
 * address) after TSRAY_PEER_CONNECT_TIMEOUT_MS; a peer whose transport is up but which answers late is
 * waited for, not reported. Forwarded tasks and releases of one turn go as one batch of four messages.
 */
import { createServer } from 'node:net';
import * as zmq from 'zeromq';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { decodeMessage, encodeMessage } from '@tsray/protocol';
import { PeerConnection, type LinkHandler } from '../src/cluster/link.js';
import { overrideConfig } from '../src/config.js';
import { makeCurveServer } from '../src/curve.js';
import { logger } from '../src/logger.js';
import { until } from './helpers/until.js';

/** A loopback port nothing listens on (bound, then closed). */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function handler(unreachable: string[]): LinkHandler {
  return {
    onNodeTable: () => undefined,
    onGcsRequest: () => ({ ok: true }),
    onPeerMessage: () => undefined,
    onFatal: () => undefined,
    onPeerUnreachable: (_id, why) => unreachable.push(why),
  };
}

describe('PeerConnection connect limit', () => {
  let restoreConfig: () => void;
  beforeEach(() => {
    restoreConfig = overrideConfig({ peerConnectTimeoutMs: 300 });
  });
  afterEach(() => {
    restoreConfig();
    vi.restoreAllMocks();
  });

  it('reports a peer nothing answers at, naming the node and its address', async () => {
    const port = await closedPort();
    const unreachable: string[] = [];
    const p = new PeerConnection('n1', `tcp://127.0.0.1:${port}`, 'me', 'tok', handler(unreachable));
    try {
      const [why] = await until(() => unreachable.length > 0 && unreachable, 'the unreachable report', { timeoutMs: 5000 });
      expect(why).toBe(
        `node n1 is unreachable at tcp://127.0.0.1:${port}: no answer to a connection within 0.3 s (is its port open to this machine, and is the address it advertises right? see --host / --node-ip-address)`,
      );
    } finally {
      p.close();
    }
  });

  it('waits for a connected peer that answers late, without reporting it', async () => {
    const warn = vi.spyOn(logger(), 'warn');
    // A CURVE server of the cluster of 'tok', as every node's tcp ROUTER is.
    const router = new zmq.Router({ linger: 0 });
    const zap = makeCurveServer(router, 'tok');
    await zap.ready;
    await router.bind('tcp://127.0.0.1:0');
    const unreachable: string[] = [];
    const p = new PeerConnection('n2', router.lastEndpoint!, 'me', 'tok', handler(unreachable));
    try {
      const [identity] = await router.receive();
      await until(
        () => warn.mock.calls.some((c) => String(c[1]).includes('has not answered in 0.3 s; still waiting')) || unreachable.length > 0,
        'the still-waiting warning',
        { timeoutMs: 5000 },
      );
      await router.send([identity!, ...encodeMessage({ workerAccepted: {} })]);
      await until(() => p.answered, 'the late answer', { timeoutMs: 5000 });
      expect(unreachable).toEqual([]);
    } finally {
      p.close();
      router.close();
      zap.release();
    }
  });
});

describe('PeerConnection batches forwarded tasks per turn', () => {
  it("sends one turn's forwards and releases as four messages (holds, tasks in order, subscriptions, releases), before anything sent later", async () => {
    const router = new zmq.Router({ linger: 0 });
    const zap = makeCurveServer(router, 'tok');
    await zap.ready;
    await router.bind('tcp://127.0.0.1:0');
    const p = new PeerConnection('n3', router.lastEndpoint!, 'me', 'tok', handler([]));
    const got: { kind: string; body: unknown }[] = [];
    const receiving = (async () => {
      for await (const [, ...frames] of router) {
        const { kind, envelope } = decodeMessage(frames);
        got.push({ kind, body: envelope[kind as keyof typeof envelope] });
      }
    })();
    try {
      for (const n of [1, 2, 3]) p.forward([`t${n}.0`], () => ({ taskId: `t${n}`, returnIds: [`t${n}.0`] }));
      p.release(['x.0', 'y.0']);
      p.forward(['t4.0', 't4.1'], () => ({ taskId: 't4', returnIds: ['t4.0', 't4.1'] }));
      // Sent in the same turn: the batch goes first.
      p.send({ refUpdates: { add: ['later'] } });
      await until(() => got.length >= 6, 'six messages', { timeoutMs: 5000 });
      expect(got.map((m) => m.kind)).toEqual(['registerWorker', 'refUpdates', 'submitTasks', 'subscribeObjects', 'refUpdates', 'refUpdates']);
      expect(got[1]!.body).toMatchObject({ add: ['t1.0', 't2.0', 't3.0', 't4.0', 't4.1'] });
      expect((got[2]!.body as { tasks: { taskId: string }[] }).tasks.map((t) => t.taskId)).toEqual(['t1', 't2', 't3', 't4']);
      expect(got[3]!.body).toMatchObject({ objectIds: ['t1.0', 't2.0', 't3.0', 't4.0', 't4.1'], locationsOnly: true });
      expect(got[4]!.body).toMatchObject({ remove: ['x.0', 'y.0'] });
      expect(got[5]!.body).toMatchObject({ add: ['later'] });
      // A later turn's forward is a batch of its own.
      p.forward(['t5.0'], () => ({ taskId: 't5', returnIds: ['t5.0'] }));
      await until(() => got.length >= 9, 'the next batch', { timeoutMs: 5000 });
      expect(got.slice(6).map((m) => m.kind)).toEqual(['refUpdates', 'submitTasks', 'subscribeObjects']);
    } finally {
      p.close();
      router.close();
      zap.release();
      await receiving.catch(() => undefined);
    }
  });
});
