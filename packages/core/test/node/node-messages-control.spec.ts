/**
 * A driver's control calls to its node (NODE_MESSAGE_HANDLERS.gcsRequest) with a fake node: state
 * queries are answered as one JSON document, any other call is refused as UNKNOWN_MESSAGE, a failing
 * state call is a CALL_FAILED reply. No sockets, no processes.
 */
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage, tsray, type EnvelopeBody, type GcsCall } from '@tsray/protocol';
import { NODE_MESSAGE_HANDLERS, type NodeMessageHost } from '../../src/node/node-messages.js';
import type { WorkerHandle } from '../../src/node/records.js';

/** Send `call` from a driver; resolves with the node's GcsResponse. */
function ask(call: GcsCall, stateCall: (method: string) => Promise<unknown>): Promise<tsray.v1.IGcsResponse> {
  return new Promise((resolve) => {
    const host = {
      stateCall,
      send: (_w: WorkerHandle, body: EnvelopeBody) => {
        if ('gcsResponse' in body) resolve(body.gcsResponse);
      },
    } as unknown as NodeMessageHost;
    NODE_MESSAGE_HANDLERS.gcsRequest!(host, {} as WorkerHandle, decodeMessage(encodeMessage({ gcsRequest: { requestId: 3, ...call } })));
  });
}

describe("a node serving its drivers' control calls", () => {
  it("answers a state query with the state call's result as one JSON document", async () => {
    const asked: string[] = [];
    const r = await ask({ stateQuery: { what: 'cluster_resources' } }, async (m) => {
      asked.push(m);
      return { CPU: 4 };
    });
    expect(asked).toEqual(['cluster_resources']);
    expect({ requestId: r.requestId, docs: r.state?.json?.map((d) => JSON.parse(d)) }).toEqual({ requestId: 3, docs: [{ CPU: 4 }] });
  });

  it('refuses every other call as UNKNOWN_MESSAGE, and a failing state call as CALL_FAILED', async () => {
    const never = async () => {
      throw new Error('not called');
    };
    expect((await ask({ kvGet: { key: 'pkg:x' } }, never)).error).toEqual({
      code: tsray.v1.ErrorCode.ERROR_CODE_UNKNOWN_MESSAGE,
      message: 'a node (to its drivers) does not serve the control call kvGet',
    });
    const failing = await ask({ stateQuery: { what: 'bogus' } }, async () => {
      throw new Error('unknown state call "bogus"');
    });
    expect(failing.error).toEqual({ code: tsray.v1.ErrorCode.ERROR_CODE_CALL_FAILED, message: 'unknown state call "bogus"' });
  });
});
