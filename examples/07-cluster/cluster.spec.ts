import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const run = promisify(execFile);
const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

it('a second process finds the named scheduler and gets the 10 results; without it, the not-found message', { timeout: 180_000 }, async () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  // The head runs a real CPU engine (transformers, tiny model) behind the scheduler actor.
  const head = spawn(process.execPath, ['--import', 'tsx', here('./head.ts')], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, TSRAY_PYTHON: `${root}.venv/bin/python` },
  });
  try {
    const address = await new Promise<string>((resolve, reject) => {
      let buf = '';
      head.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        const m = /head ready at (\S+)/.exec(buf);
        if (m) resolve(m[1]!);
      });
      head.on('exit', (c) => reject(new Error(`head exited (${c}): ${buf}`)));
    });
    const env = { ...process.env, TSRAY_ADDRESS: address };
    const { stdout } = await run(process.execPath, ['--import', 'tsx', here('./worker.ts')], { env, timeout: 60_000 });
    const results = JSON.parse(stdout.trim()) as string[];
    expect(results.length).toBe(10);
    expect(results.every((r) => typeof r === 'string')).toBe(true);
    // The seed's Python worker-node script (ray renamed to tsray) calls the same TS scheduler actor.
    const py = spawn(fileURLToPath(new URL('../../.venv/bin/python', import.meta.url)), ['-u', here('./worker_node.py')], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let buf = '';
        py.stdout!.on('data', (d: Buffer) => {
          buf += d.toString();
          const nl = buf.indexOf('\n');
          if (nl !== -1) resolve(buf.slice(0, nl));
        });
        py.on('exit', (c) => reject(new Error(`worker_node.py exited (${c}): ${buf}`)));
      });
      // The same 10 results (greedy decoding), printed as a Python list.
      const { stdout: parsed } = await run(`${root}.venv/bin/python`, ['-c', 'import ast, json, sys; print(json.dumps(ast.literal_eval(sys.argv[1])))', line]);
      expect(JSON.parse(parsed)).toEqual(results);
    } finally {
      py.kill('SIGKILL'); // the seed's script ends in `while True: pass`
      await new Promise((r) => py.on('close', r));
    }
  } finally {
    head.kill('SIGINT');
    await new Promise((r) => head.on('close', r));
  }
  // No cluster at that address any more: the worker says the model server is not found.
  const { stdout } = await run(process.execPath, ['--import', 'tsx', here('./worker.ts')], {
    env: { ...process.env, TSRAY_ADDRESS: 'ipc:///nonexistent/tsray.sock', TSRAY_CONNECT_TIMEOUT_MS: '1500' },
    timeout: 60_000,
  });
  expect(stdout).toContain('ModelServer not found in the cluster');
});
