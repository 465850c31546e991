/**
 * How the engine handle queues deltas a consumer has not pulled yet (pushCoalesced): one queued delta per
 * running completion, extended in place, so a slow reader's backlog holds text, not one object per token.
 */
import { describe, expect, it } from 'vitest';
import { pushCoalesced } from '../src/engine.js';
import type { StreamDelta } from '../src/engine.js';

const delta = (index: number, i: number, finishReason?: string, withLogprobs = false): StreamDelta => ({
  requestId: 'r',
  index,
  text: ` t${i}`,
  tokenIds: [i],
  finishReason,
  promptTokens: 3,
  completionTokens: i + 1,
  ...(withLogprobs ? { logprobs: [{ tokenId: i, token: ` t${i}`, logprob: -i, top: [] }] } : {}),
});

describe('pushCoalesced', () => {
  it('merges a completion backlog into one delta (text, ids, logprobs, counts, finish reason of the last)', () => {
    const q: StreamDelta[] = [];
    for (let i = 0; i < 100; i++) pushCoalesced(q, delta(0, i, i === 99 ? 'length' : undefined, true));
    expect(q).toHaveLength(1);
    expect(q[0]!.text).toBe(Array.from({ length: 100 }, (_, i) => ` t${i}`).join(''));
    expect(q[0]!.tokenIds).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(q[0]!.logprobs!.map((l) => l.tokenId)).toEqual(q[0]!.tokenIds);
    expect(q[0]).toMatchObject({ finishReason: 'length', completionTokens: 100 });
  });

  it('n > 1: interleaved completions each keep one queued delta; nothing merges into a finished one', () => {
    const q: StreamDelta[] = [];
    for (let i = 0; i < 10; i++) for (const k of [0, 1]) pushCoalesced(q, delta(k, i, k === 0 && i === 4 ? 'stop' : undefined));
    // Completion 0 finished at token 4: its later deltas (none should come; here 5..9) start a new entry.
    expect(q.map((d) => [d.index, d.tokenIds.length, d.finishReason])).toEqual([
      [0, 5, 'stop'],
      [1, 10, undefined],
      [0, 5, undefined],
    ]);
  });
});
