/**
 * `tsray serve` as a drop-in for `vllm serve` (issue #23): the official Python `openai` client (a script run
 * with the project venv, which has `openai` and `prometheus_client` from python/requirements-dev.txt) and
 * the npm `openai` client against one server in front of a scripted engine (max_model_len 128, "tokN" tokens).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init, shutdown } from '@tsray/core';
import { LLMEngine, serveOpenAI, type OpenAIServer } from '@tsray/vllm-bridge';
import { until } from './helpers/until.js';

const venvPython = fileURLToPath(new URL('../../../.venv/bin/python', import.meta.url));
const script = fileURLToPath(new URL('./fixtures/openai_conformance.py', import.meta.url));
const KEY = 'sk-conformance';

let engine: LLMEngine;
let server: OpenAIServer;
let client: OpenAI;

beforeAll(async () => {
  await init({ numCpus: 4, objectStoreMemory: 128 * 1024 * 1024, python: venvPython, logToDriver: false });
  engine = await LLMEngine.deploy({ model: 'scripted', backend: 'scripted', engineArgs: { token_delay_s: 0.001 } });
  server = await serveOpenAI(engine, { port: 0, modelName: 'tiny', apiKey: KEY });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
});
afterAll(async () => {
  await server?.close();
  await engine?.shutdown();
  await shutdown();
});

/** Wait until the engine has nothing running or waiting (throws naming the state at the deadline). */
async function engineIdle(): Promise<{ running: number; waiting: number }> {
  let last = { running: -1, waiting: -1 };
  return until(
    async () => {
      last = await engine.stats();
      return last.running + last.waiting === 0 ? last : undefined;
    },
    () => `the engine to be idle (running ${last.running}, waiting ${last.waiting})`,
  );
}

describe('official Python openai client', () => {
  it('passes the conformance checks (usage chunk, ranges, logprobs, extras, defaults, errors, models, version, tokenize, API key, metrics)', async () => {
    const { stdout } = await promisify(execFile)(venvPython, [script, server.url, KEY], { timeout: 120_000 }).catch(
      (e: { stdout?: string; stderr?: string }) => {
        throw new Error(`conformance script failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
      },
    );
    expect(stdout).toMatch(/^13 passed, 0 failed$/m);
  });
});

describe('npm openai client', () => {
  it('stream_options.include_usage: a last chunk with no choices and the usage; the role only in the first chunk', async () => {
    const chunks = [];
    const s = await client.chat.completions.create({
      model: 'tiny',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 3,
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const c of s) chunks.push(c);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage!.completion_tokens).toBe(3);
    const roles = chunks.filter((c) => c.choices.length > 0).map((c) => c.choices[0]!.delta.role);
    expect(roles[0]).toBe('assistant');
    expect(roles.slice(1).every((r) => r === undefined)).toBe(true);
  });

  it('bad input: each a 400 naming its param (vLLM error shape), and the server keeps serving', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ temperature: 5 }, 'temperature'],
      [{ max_tokens: 100000 }, 'max_tokens'],
      [{ n: 2147483647 }, 'n'],
      [{ n: 2, temperature: 0 }, 'n'],
      [{ top_k: -7 }, 'top_k'],
      [{ logprobs: 99 }, 'logprobs'],
      [{ stream_options: { include_usage: true } }, 'stream_options'],
      [{ ignore_eos: 'yes' }, 'ignore_eos'],
    ];
    for (const [extra, param] of cases) {
      const e = (await client.completions.create({ model: 'tiny', prompt: 'x', ...extra } as never).catch((x: unknown) => x)) as InstanceType<
        typeof OpenAI.APIError
      >;
      expect({ extra, status: e.status, param: e.param, type: e.type, code: e.code }).toEqual({
        extra,
        status: 400,
        param,
        type: 'BadRequestError',
        code: 400,
      });
    }
    const r = await client.completions.create({ model: 'tiny', prompt: 'still here', max_tokens: 2 });
    expect(r.choices[0]!.text).toBe('tok0 tok1');
  });

  it('64 concurrent streams all complete with their own text', async () => {
    const texts = await Promise.all(
      Array.from({ length: 64 }, async () => {
        const s = await client.completions.create({ model: 'tiny', prompt: 'go', max_tokens: 8, stream: true });
        let t = '';
        for await (const c of s) t += c.choices[0]?.text ?? '';
        return t;
      }),
    );
    expect(new Set(texts)).toEqual(new Set(['tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7']));
    expect((await engineIdle()).running).toBe(0);
  });

  it('a client that disconnects mid-stream aborts its request in the engine', async () => {
    const ac = new AbortController();
    const s = await client.completions.create({ model: 'tiny', prompt: '__slow__ go', max_tokens: 100, stream: true }, { signal: ac.signal });
    let n = 0;
    await (async () => {
      for await (const _ of s) if (++n === 2) ac.abort();
    })().catch(() => undefined);
    expect(n).toBe(2);
    const st = await engineIdle();
    expect(st.running + st.waiting).toBe(0);
  });

  it('without the API key /v1/* is a 401; /health and /metrics stay open', async () => {
    const open = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'nope', maxRetries: 0 });
    const e = (await open.models.list().catch((x: unknown) => x)) as { status: number };
    expect(e.status).toBe(401);
    expect((await fetch(`${server.url}/v1/models`)).status).toBe(401);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    expect((await fetch(`${server.url}/metrics`)).status).toBe(200);
  });

  it('/metrics labels requests by route, never by the raw path', async () => {
    for (let i = 0; i < 5; i++) await fetch(`${server.url}/v1/made-up-${i}`, { headers: { authorization: `Bearer ${KEY}` } });
    const m = await (await fetch(`${server.url}/metrics`)).text();
    expect(m).not.toContain('made-up');
    expect(m).toMatch(/tsray_requests_total\{endpoint="other",status="404"\} 5/);
  });
});
