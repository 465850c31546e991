import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init, shutdown } from '@tsray/core';
import {
  DataParallel,
  EngineDeadError,
  EngineStartError,
  GenerateAbortedError,
  LLMEngine,
  serveOpenAI,
  type EngineState,
  type OpenAIServer,
  type StreamDelta,
} from '@tsray/vllm-bridge';
import { until } from './helpers/until.js';

const venvPython = fileURLToPath(new URL('../../../.venv/bin/python', import.meta.url));

beforeAll(async () => {
  await init({ numCpus: 6, numGpus: 4, objectStoreMemory: 128 * 1024 * 1024, python: venvPython, logToDriver: false });
});
afterAll(async () => {
  await shutdown();
});

const scripted = (extra: Record<string, unknown> = {}) => ({ model: 'scripted', backend: 'scripted' as const, engineArgs: { token_delay_s: 0.002, ...extra } });

/** Resolves when `engine` reaches `state`. */
const reach = (engine: LLMEngine, state: EngineState) =>
  new Promise<void>((resolve) => {
    if (engine.state === state) return resolve();
    const off = engine.onState((s) => {
      if (s === state) {
        off();
        resolve();
      }
    });
  });

/** Start a DP stream and resolve once its first delta arrived; `done` settles with the outcome. */
function startStream(dp: DataParallel, prompt: string, maxTokens: number, signal?: AbortSignal) {
  let first!: () => void;
  const started = new Promise<void>((r) => (first = r));
  const deltas: StreamDelta[] = [];
  // Settles with 'ok' or the error (handled from the start: no unhandled rejection).
  const done = (async () => {
    for await (const d of dp.stream(prompt, { maxTokens }, signal ? { signal } : {})) {
      deltas.push(d);
      if (deltas.length === 1) first();
    }
  })().then(
    () => 'ok' as const,
    (e: unknown) => e,
  );
  return { started, done, deltas };
}

describe('DataParallel rank failure', () => {
  it('a SIGKILLed rank leaves routing at once, its unstarted requests move, started ones fail, and it rejoins after the restart', async () => {
    const dp = await DataParallel.deploy({ ...scripted({ token_delay_s: 0.01 }), ranks: 2, maxRestarts: 1, statsIntervalMs: 20 });
    try {
      const pid0 = (await dp.rank(0).info()).pid;
      const seen: EngineState[] = [];
      dp.rank(0).onState((s) => seen.push(s));
      // Load: 6 long streams that have produced output, and 4 requests that never produce any.
      const long = Array.from({ length: 6 }, (_, i) => startStream(dp, `long ${i}`, 400));
      await Promise.all(long.map((l) => l.started));
      const ac = new AbortController();
      const hang = Array.from({ length: 4 }, (_, i) => dp.generate([`__hang__ ${i}`], { maxTokens: 5 }, { signal: ac.signal }).catch((e: unknown) => e));
      await until(async () => (await dp.stats()).reduce((a, s) => a + s.running + s.waiting, 0) === 10, 'all 10 requests running');
      const before = await dp.stats();
      const onRank0 = before[0]!.running + before[0]!.waiting;
      expect(onRank0).toBeGreaterThan(0);

      const down = reach(dp.rank(0), 'restarting');
      process.kill(pid0, 'SIGKILL');
      await down;
      // Out of routing at once: everything now goes to rank 1.
      const served0 = (await dp.stats())[0]!.served;
      const quick = await dp.generate(['a', 'b', 'c', 'd'], { maxTokens: 2 });
      expect(quick.every((c) => c.text === 'tok0 tok1')).toBe(true);
      expect((await dp.stats())[0]!.served).toBe(served0);

      // Streams that had produced output on rank 0 fail with EngineDeadError; the others finish.
      const outcomes = await Promise.all(long.map((l) => l.done));
      const failed = outcomes.filter((o) => o !== 'ok');
      expect(failed.length).toBeGreaterThan(0);
      expect(failed.every((e) => e instanceof EngineDeadError)).toBe(true);
      expect(outcomes.filter((o) => o === 'ok').length).toBe(6 - failed.length);
      // The 4 output-less requests all ended up on rank 1 (rank 0's were retried there).
      await until(async () => (await dp.stats())[1]!.running === 4, 'the hanging requests on rank 1');
      ac.abort();
      const hung = await Promise.all(hang);
      expect(hung.every((e) => e instanceof GenerateAbortedError)).toBe(true);

      // The rank restarts (a new process) and rejoins routing.
      await dp.rank(0).ready();
      expect(seen).toEqual(['restarting', 'ready']);
      expect((await dp.rank(0).info()).pid).not.toBe(pid0);
      const st = await dp.stats();
      expect(st.map((s) => s.state)).toEqual(['ready', 'ready']);
      expect(st[0]!.restarts).toBe(1);
      await dp.generate(
        Array.from({ length: 8 }, (_, i) => `again ${i}`),
        { maxTokens: 2 },
      );
      expect((await dp.stats())[0]!.served).toBeGreaterThan(served0);
    } finally {
      await dp.shutdown();
    }
  });

  it('without restarts the rank stays dead and out of routing; the others keep serving', async () => {
    const dp = await DataParallel.deploy({ ...scripted(), ranks: 2, statsIntervalMs: 20 });
    try {
      const down = reach(dp.rank(1), 'dead');
      process.kill((await dp.rank(1).info()).pid, 'SIGKILL');
      await down;
      expect(dp.rank(1).error).toBeInstanceOf(EngineDeadError);
      const out = await dp.generate(['x', 'y', 'z'], { maxTokens: 1 });
      expect(out.length).toBe(3);
      const st = await dp.stats();
      expect(st.map((s) => s.state)).toEqual(['ready', 'dead']);
      expect(st[0]!.served).toBe(3);
      expect(dp.pick('x')).toBe(0);
    } finally {
      await dp.shutdown();
    }
  });
});

describe('readiness over HTTP', () => {
  it('an engine still loading answers 503 with Retry-After (and /health 503), then serves', async () => {
    const engine = await LLMEngine.deploy({ ...scripted({ start_delay_s: 1 }), wait: false });
    const server = await serveOpenAI(engine, { port: 0, modelName: 'tiny' });
    try {
      expect(engine.state).toBe('starting');
      const h = await fetch(`${server.url}/health`);
      expect(h.status).toBe(503);
      expect(h.headers.get('retry-after')).toBe('1');
      const r = await fetch(`${server.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'hi', max_tokens: 2 }) });
      expect(r.status).toBe(503);
      expect(r.headers.get('retry-after')).toBe('1');
      expect(((await r.json()) as { error: { message: string } }).error.message).toMatch(/loading/);
      await engine.ready();
      expect((await fetch(`${server.url}/health`)).status).toBe(200);
      const ok = await fetch(`${server.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'hi', max_tokens: 2 }) });
      expect(((await ok.json()) as { choices: { text: string }[] }).choices[0]!.text).toBe('tok0 tok1');
    } finally {
      await server.close();
      await engine.shutdown();
    }
  });

  it('a DP group serves as soon as one rank is ready', async () => {
    // Two ranks on one (fake) GPU: the first to start is ready at once, the second waits for the
    // test's gate file (scripted start_gate_file), so "one ready, one starting" holds however slow.
    const gate = join(mkdtempSync(join(tmpdir(), 'tsray-gate-')), 'open');
    const dp = await DataParallel.deploy({ ...scripted({ start_delay_s: 1, start_gate_file: gate }), ranks: 2, gpusPerRank: 0.5, waitFor: 'none' });
    const server = await serveOpenAI(dp, { port: 0, modelName: 'tiny' });
    try {
      expect((await fetch(`${server.url}/health`)).status).toBe(503);
      await until(async () => (await fetch(`${server.url}/health`)).status === 200, '/health 200');
      expect([...dp.states].sort()).toEqual(['ready', 'starting']);
      const r = await fetch(`${server.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'hi', max_tokens: 3 }) });
      expect(r.status).toBe(200);
      expect([...dp.states].sort()).toEqual(['ready', 'starting']);
      writeFileSync(gate, '');
      await Promise.all([0, 1].map((i) => dp.rank(i).ready()));
      expect((await dp.stats()).map((s) => s.state)).toEqual(['ready', 'ready']);
    } finally {
      await server.close();
      await dp.shutdown();
      rmSync(dirname(gate), { recursive: true, force: true });
    }
  });
});

describe('bad inputs end to end over HTTP', () => {
  let engine: LLMEngine;
  let server: OpenAIServer;
  const post = async (body: unknown, raw = false) => {
    const r = await fetch(`${server.url}/v1/completions`, { method: 'POST', body: raw ? (body as string) : JSON.stringify(body) });
    const text = await r.text();
    return {
      status: r.status,
      text,
      json: (() => {
        try {
          return JSON.parse(text) as { error?: { message: string; param: string | null } };
        } catch {
          return {};
        }
      })(),
    };
  };
  beforeAll(async () => {
    engine = await LLMEngine.deploy({ ...scripted(), maxRestarts: 1 });
    server = await serveOpenAI(engine, { port: 0, modelName: 'tiny', maxBodyBytes: 4096 });
  });
  afterAll(async () => {
    await server.close();
    await engine.shutdown();
  });

  it('a prompt over the context length is a 400 naming the limit', async () => {
    const r = await post({ prompt: Array(300).fill('w').join(' ') });
    expect(r.status).toBe(400);
    expect(r.json.error!.param).toBe('prompt');
    expect(r.json.error!.message).toContain('127');
  });

  it('invalid sampling params are 400s naming the field', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ temperature: -1 }, 'temperature'],
      [{ temperature: 'hot' }, 'temperature'],
      [{ top_p: 5 }, 'top_p'],
      [{ top_k: 1.5 }, 'top_k'],
      [{ max_tokens: 0 }, 'max_tokens'],
      [{ max_tokens: 1e12 }, 'max_tokens'],
      [{ n: 0 }, 'n'],
      [{ seed: -4 }, 'seed'],
      [{ stop: 5 }, 'stop'],
    ];
    for (const [params, field] of cases) {
      const r = await post({ prompt: 'x', ...params });
      expect({ params, status: r.status, param: r.json.error?.param }).toEqual({ params, status: 400, param: field });
      expect(r.json.error!.message).toContain(field);
    }
  });

  it('malformed bodies are 400s (413 over the size limit)', async () => {
    expect((await post('{not json', true)).status).toBe(400);
    expect((await post('[1, 2]', true)).status).toBe(400);
    expect((await post('', true)).status).toBe(400);
    expect((await post({ max_tokens: 2 })).json.error!.param).toBe('prompt');
    expect((await post({ prompt: { a: 1 } })).status).toBe(400);
    const chat = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ messages: [{ role: 'user' }] }) });
    expect(chat.status).toBe(400);
    expect((await post({ prompt: 'x'.repeat(5000) })).status).toBe(413);
    expect((await fetch(`${server.url}/v1/nothing`)).status).toBe(404);
  });

  it('engine failures end the request (500 / SSE error event / 503) and the server keeps serving', async () => {
    const fail = await post({ prompt: '__fail__ x', max_tokens: 10 });
    expect(fail.status).toBe(500);
    expect(fail.json.error!.message).toMatch(/failed on purpose/);
    const sse = await post({ prompt: '__fail__ x', max_tokens: 10, stream: true });
    expect(sse.status).toBe(200);
    expect(sse.text).toMatch(/"error"/);
    expect(sse.text.trimEnd().endsWith('data: [DONE]')).toBe(true);
    // The engine process dies under the request: 503, then the restarted engine serves again.
    const crash = await post({ prompt: '__crash__ x', max_tokens: 3 });
    expect(crash.status).toBe(503);
    await engine.ready();
    const ok = await post({ prompt: 'fine', max_tokens: 2 });
    expect(ok.status).toBe(200);
  });

  it('bad engine args fail the start with EngineStartError carrying the engine message', async () => {
    const err = await LLMEngine.deploy({ ...scripted({ bogus_arg: 1 }) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineStartError);
    expect((err as Error).message).toMatch(/invalid engine argument 'bogus_arg'/);
  });

  it('an unknown model folder: EngineStartError with the engine message, and HTTP 503 saying so', async () => {
    const bad = await LLMEngine.deploy({ model: '/nonexistent/model-folder', backend: 'transformers', wait: false });
    const s = await serveOpenAI(bad, { port: 0 });
    try {
      const err = await bad.ready().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EngineStartError);
      expect((err as Error).message).toMatch(/cannot load the model from \/nonexistent\/model-folder: no config\.json/);
      const h = await fetch(`${s.url}/health`);
      expect(h.status).toBe(503);
      const r = await fetch(`${s.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'x' }) });
      expect(r.status).toBe(503);
      expect(r.headers.get('retry-after')).toBeNull();
      expect(((await r.json()) as { error: { message: string } }).error.message).toMatch(/no config\.json/);
    } finally {
      await s.close();
      await bad.shutdown();
    }
  });
});
