/**
 * The OpenAI server depends on the `EngineClient` interface only (issue #23): a hand-written client that
 * is none of the bridge's classes is served, its state drives /health, its stats drive /metrics, and
 * its tokenizer answers /tokenize. The three engine classes implement the interface (checked by tsc).
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  DataParallel,
  LLMEngine,
  MoEDataParallel,
  serveOpenAI,
  type Completion,
  type EngineClient,
  type EngineInfo,
  type EngineState,
  type EngineStats,
  type OpenAIServer,
  type Prompt,
  type StreamDelta,
} from '@tsray/vllm-bridge';

/** An in-process EngineClient that echoes the prompt back word by word. */
class EchoClient implements EngineClient {
  readonly model = 'echo-model';
  state: EngineState = 'starting';
  error: Error | undefined = undefined;
  async ready(): Promise<void> {}
  async *stream(prompt: Prompt): AsyncGenerator<StreamDelta, void, undefined> {
    const words = String(prompt).split(' ');
    for (const [i, w] of words.entries()) {
      const last = i === words.length - 1;
      yield {
        requestId: 'r',
        index: 0,
        text: i === 0 ? w : ` ${w}`,
        tokenIds: [i],
        finishReason: last ? 'stop' : undefined,
        promptTokens: words.length,
        completionTokens: i + 1,
      };
    }
  }
  async generate(): Promise<Completion[]> {
    return [];
  }
  async stats(): Promise<EngineStats[]> {
    return [
      { waiting: 2, running: 1, kvCacheUsage: 0.5, model: this.model, maxModelLen: 64, backend: 'echo' },
      { waiting: 3, running: 4, kvCacheUsage: 0.1, model: this.model, maxModelLen: 64, backend: 'echo' },
    ];
  }
  async info(): Promise<EngineInfo> {
    return { backend: 'echo', max_model_len: 64, model: this.model, pid: process.pid, cuda_visible_devices: null, tensor_parallel_size: 1, gpu_ids: [] };
  }
  tokenizer() {
    return {
      tokenize: async (p: unknown) =>
        String(p)
          .split(' ')
          .map((_, i) => i),
      detokenize: async (ids: number[]) => ids.join(' '),
    };
  }
  async shutdown(): Promise<void> {}
}

let server: OpenAIServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('serveOpenAI over an EngineClient', () => {
  it('serves any EngineClient: health follows state, completions stream, metrics sum the members, tokenize uses its tokenizer', async () => {
    const client = new EchoClient();
    server = await serveOpenAI(client, { port: 0 });
    expect((await fetch(`${server.url}/health`)).status).toBe(503);
    client.state = 'ready';
    expect((await fetch(`${server.url}/health`)).status).toBe(200);

    const res = await fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'echo-model', prompt: 'the capital is Paris', max_tokens: 8, temperature: 0 }),
    });
    const body = (await res.json()) as { choices: { text: string; finish_reason: string }[] };
    expect(res.status).toBe(200);
    expect(body.choices[0]).toMatchObject({ text: 'the capital is Paris', finish_reason: 'stop' });

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/vllm:num_requests_waiting\{[^}]*model_name="echo-model"[^}]*\} 5/);
    expect(metrics).toMatch(/vllm:num_requests_running\{[^}]*model_name="echo-model"[^}]*\} 5/);

    const tok = await fetch(`${server.url}/tokenize`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'a b c' }),
    });
    expect(await tok.json()).toMatchObject({ tokens: [0, 1, 2], count: 3 });

    client.state = 'dead';
    client.error = new Error('gone');
    const dead = await fetch(`${server.url}/health`);
    expect(dead.status).toBe(503);
  });

  it('is implemented by LLMEngine, DataParallel and MoEDataParallel', () => {
    // Type-level: this assignment fails tsc (tools/typecheck.sh) when a class drifts from the interface.
    const instances: EngineClient[] = [] as (LLMEngine | DataParallel | MoEDataParallel)[];
    expect(instances).toEqual([]);
    for (const c of [LLMEngine, DataParallel, MoEDataParallel]) {
      for (const m of ['stream', 'generate', 'stats', 'info', 'ready', 'shutdown', 'tokenizer'] as const) expect(typeof c.prototype[m]).toBe('function');
    }
  });
});
