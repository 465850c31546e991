import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const cli = fileURLToPath(new URL('../dist/serve-cli.js', import.meta.url));
const python = fileURLToPath(new URL('../../../.venv/bin/python', import.meta.url));

function serve(extra: string[], env: Record<string, string> = {}) {
  const p = spawn(
    process.execPath,
    [cli, '--model', 'scripted', '--backend', 'scripted', '--port', '0', '--served-model-name', 'tiny', '--python', python, ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
  );
  let out = '';
  let err = '';
  const waiters: [RegExp, (m: RegExpExecArray) => void][] = [];
  const check = () => {
    for (const [re, resolve] of waiters.splice(0)) {
      const m = re.exec(out);
      if (m) resolve(m);
      else waiters.push([re, resolve]);
    }
  };
  p.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    check();
  });
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  return {
    p,
    exited,
    stderr: () => err,
    /** Resolves when stdout matches `re`; rejects if the process exits first. */
    line: (re: RegExp) =>
      Promise.race([
        new Promise<RegExpExecArray>((resolve) => {
          waiters.push([re, resolve]);
          check();
        }),
        exited.then((c) => Promise.reject(new Error(`tsray-serve exited (${c}): ${out}${err}`))),
      ]),
  };
}

it('tsray-serve listens at once (503 + Retry-After while loading), serves once ready; SIGINT stops everything', async () => {
  const s = serve(['--engine-args', '{"start_delay_s": 1}']);
  try {
    const url = (await s.line(/listening on (\S+)/))[1]!;
    const early = await fetch(`${url}/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'hi', max_tokens: 2 }) });
    expect(early.status).toBe(503);
    expect(early.headers.get('retry-after')).toBe('1');
    await s.line(/tsray-serve: ready/);
    const models = (await (await fetch(`${url}/models`)).json()) as { data: { id: string }[] };
    expect(models.data[0]!.id).toBe('tiny');
    const r = (await (await fetch(`${url}/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'hi', max_tokens: 2 }) })).json()) as {
      choices: { text: string }[];
    };
    expect(r.choices[0]!.text).toBe('tok0 tok1');
  } finally {
    s.p.kill('SIGINT');
  }
  expect(await s.exited).toBe(0);
});

it('tsray-serve with engine args the engine refuses exits 1 with the engine message', async () => {
  const s = serve(['--engine-args', '{"no_such_arg": 1}']);
  const code = await s.exited;
  expect(code).toBe(1);
  expect(s.stderr()).toMatch(/EngineStartError: .*invalid engine argument 'no_such_arg'/);
});

it('tsray-serve takes its API key from TSRAY_API_KEY (--api-key wins): /v1/* needs it, /health does not', async () => {
  const s = serve(['--api-key', 'from-flag'], { TSRAY_API_KEY: 'from-env' });
  try {
    const url = (await s.line(/listening on (\S+)/))[1]!;
    await s.line(/tsray-serve: ready/);
    const models = (key: string) => fetch(`${url}/models`, { headers: { authorization: `Bearer ${key}` } });
    expect((await models('from-env')).status).toBe(401);
    expect((await models('from-flag')).status).toBe(200);
    expect((await fetch(`${url.replace(/\/v1$/, '')}/health`)).status).toBe(200);
  } finally {
    s.p.kill('SIGINT');
  }
  expect(await s.exited).toBe(0);
  const e = serve([], { TSRAY_API_KEY: 'from-env' });
  try {
    const url = (await e.line(/listening on (\S+)/))[1]!;
    await e.line(/tsray-serve: ready/);
    expect((await fetch(`${url}/models`)).status).toBe(401);
    expect((await fetch(`${url}/models`, { headers: { authorization: 'Bearer from-env' } })).status).toBe(200);
  } finally {
    e.p.kill('SIGINT');
  }
  expect(await e.exited).toBe(0);
});
