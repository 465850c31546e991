import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

it('tsray-serve starts a cluster, an engine and the OpenAI server; SIGINT stops everything', async () => {
  const cli = fileURLToPath(new URL('../dist/serve-cli.js', import.meta.url));
  const python = fileURLToPath(new URL('../../../.venv/bin/python', import.meta.url));
  const p = spawn(process.execPath, [cli, '--model', 'scripted', '--backend', 'scripted', '--port', '0', '--served-model-name', 'tiny', '--python', python], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let buf = '';
      p.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        const m = /listening on (\S+)/.exec(buf);
        if (m) resolve(m[1]!);
      });
      p.on('exit', (c) => reject(new Error(`tsray-serve exited (${c}): ${buf}`)));
    });
    const models = (await (await fetch(`${url}/models`)).json()) as { data: { id: string }[] };
    expect(models.data[0]!.id).toBe('tiny');
    const r = (await (await fetch(`${url}/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'hi', max_tokens: 2 }) })).json()) as { choices: { text: string }[] };
    expect(r.choices[0]!.text).toBe('tok0 tok1');
  } finally {
    p.kill('SIGINT');
  }
  const code = await new Promise<number | null>((r) => (p.exitCode !== null ? r(p.exitCode) : p.on('exit', r)));
  expect(code).toBe(0);
});
