/**
 * An engine whose data plane is bound to tcp (`bind: 'tcp'`, for clients on other machines) is a CURVE
 * server: `LLMEngine` gets its public key from the engine actor (`server_key()`, i.e. through the
 * authenticated cluster) and generates as over ipc; a client that does not have that key, or speaks
 * plain ZeroMQ, fails the handshake and is never answered (scripted backend, no model needed).
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';
import { get, init, shutdown } from '@tsray/core';
import { onCurveRefused } from '@tsray/core/internal';
import { encodeMessage } from '@tsray/protocol';
import { LLMEngine } from '@tsray/vllm-bridge';

const venvPython = fileURLToPath(new URL('../../../.venv/bin/python', import.meta.url));

beforeAll(async () => {
  await init({ numCpus: 2, objectStoreMemory: 64 * 1024 * 1024, python: venvPython, logToDriver: false });
});
afterAll(async () => {
  await shutdown();
});

describe('an engine data plane on tcp', () => {
  it('is encrypted: LLMEngine connects with the actor-given key; a client without it is refused', async () => {
    const engine = await LLMEngine.deploy({ model: 'scripted', backend: 'scripted', engineArgs: { token_delay_s: 0.001 }, bind: 'tcp' });
    try {
      const address = String(await get(engine.actor.address.remote()));
      expect(address).toMatch(/^tcp:\/\//);
      const key = String(await get(engine.actor.server_key.remote()));
      expect(key).toHaveLength(40);
      const [c] = await engine.generate('hello', { maxTokens: 3 });
      expect(c!.text).toBe('tok0 tok1 tok2');

      const stranger = zmq.curveKeyPair(); // another server key than the engine's: not its client
      for (const opts of [{ curveServerKey: stranger.publicKey, curvePublicKey: stranger.publicKey, curveSecretKey: stranger.secretKey }, {}]) {
        const s = new zmq.Dealer({ linger: 0, ...opts });
        const refused = new Promise<string>((r) => onCurveRefused(s, r));
        s.connect(address);
        await s.send(encodeMessage({ engineStatsRequest: { requestId: 1 } }));
        await refused;
        s.close();
      }
      // The engine still serves its client.
      const [again] = await engine.generate('hello', { maxTokens: 2 });
      expect(again!.text).toBe('tok0 tok1');
    } finally {
      await engine.shutdown();
    }
  }, 120_000);
});
