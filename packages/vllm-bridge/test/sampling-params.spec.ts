/**
 * One sampling-parameter schema (issue #23): the HTTP edge and the TS API reject the same bad values
 * with the same vLLM message and field, and the protobuf mapping is the one `toWireParams`.
 */
import { describe, expect, it } from 'vitest';
import { completionRequest, parseRequest, RequestValidationError } from '../src/request-schema.js';
import { samplingParamsSchema, samplingProblem, toWireParams, type SamplingParams } from '../src/sampling-params.js';

/** The HTTP edge's answer to a completion body, as [message, param]. */
function httpProblem(extra: Record<string, unknown>): [string, string | undefined] | undefined {
  try {
    parseRequest(completionRequest, { prompt: 'x', ...extra });
    return undefined;
  } catch (e) {
    if (!(e instanceof RequestValidationError)) throw e;
    return [e.message, e.param];
  }
}

describe('sampling parameters', () => {
  const cases: [Record<string, unknown>, Record<string, unknown>][] = [
    [{ temperature: 5 }, { temperature: 5 }],
    [{ top_p: 0 }, { topP: 0 }],
    [{ top_k: -2 }, { topK: -2 }],
    [{ max_tokens: 0 }, { maxTokens: 0 }],
    [{ n: 65 }, { n: 65 }],
    [{ seed: 1.5 }, { seed: 1.5 }],
    [{ logprobs: 21 }, { logprobs: 21 }],
    [{ ignore_eos: 'yes' }, { ignoreEos: 'yes' }],
  ];
  it.each(cases)('HTTP %j and the TS API give one message and field', (http, ts) => {
    const h = httpProblem(http);
    expect(h).toBeDefined();
    expect(samplingProblem(ts)).toEqual(h);
  });

  it('accepts valid values at both edges, maxTokens null included', () => {
    expect(httpProblem({ temperature: 0.7, top_p: 1, top_k: -1, max_tokens: 5, n: 2, seed: 3, logprobs: 2, ignore_eos: true })).toBeUndefined();
    const p: SamplingParams = { temperature: 0.7, topP: 1, topK: -1, maxTokens: null, n: 2, seed: 3, logprobs: 2, ignoreEos: true, stop: ['.'] };
    expect(samplingProblem(p)).toBeUndefined();
    expect(samplingParamsSchema.parse(p)).toEqual(p);
  });

  it('maps to the protobuf message once (null max tokens = 0: the rest of the context)', () => {
    expect(toWireParams({ temperature: 0, topP: 0.5, topK: 4, maxTokens: null, stop: ['x'], seed: 7, n: 1, logprobs: 3, ignoreEos: true })).toEqual({
      temperature: 0,
      topP: 0.5,
      topK: 4,
      maxTokens: 0,
      stop: ['x'],
      seed: 7,
      n: 1,
      logprobs: 3,
      ignoreEos: true,
    });
    expect(toWireParams({ maxTokens: 9 })).toEqual({ maxTokens: 9 });
  });
});
