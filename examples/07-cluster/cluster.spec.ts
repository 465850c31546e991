import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const run = promisify(execFile);
const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

it('a second process finds the named scheduler and gets the 10 results; without it, the not-found message', { timeout: 400_000 }, async () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  // The head runs a real CPU engine (transformers, SmolLM2-135M-Instruct) behind the scheduler actor.
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
    const py = spawn(fileURLToPath(new URL('../../.venv/bin/python', import.meta.url)), ['-u', here('./worker_node.py')], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
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

it('on a multi-node cluster (tsray start --head + a second node, real CPU engine): a driver on the other node finds the scheduler', {
  timeout: 400_000,
}, async () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const cli = `${root}packages/cluster/dist/cli.js`;
  const tmp = mkdtempSync(join(tmpdir(), 'tsray-ex07-'));
  const env = { ...process.env, TMPDIR: tmp, TSRAY_PYTHON: `${root}.venv/bin/python` };
  let head: ReturnType<typeof spawn> | undefined;
  try {
    const started = await run(process.execPath, [cli, 'start', '--head', '--port', '0', '--dashboard-port', '0', '--num-cpus', '2'], {
      env,
      cwd: root,
      timeout: 60_000,
    });
    const gcs = /Address: (\S+)/.exec(started.stdout)![1]!;
    await run(process.execPath, [cli, 'start', '--address', gcs, '--num-cpus', '2', '--resources', '{"worker_node": 1}'], { env, cwd: root, timeout: 60_000 });
    // Sessions live in the user's private runtime directory, $TMPDIR/tsray-<uid>.
    const runtime = join(tmp, `tsray-${process.getuid?.() ?? 'user'}`);
    const session = readdirSync(runtime).find((d) => d.startsWith('session-'))!;
    const dir = join(runtime, session);
    const nodeReady = readdirSync(dir).find((f) => f.startsWith('node-') && f.endsWith('.ready.json'))!;
    const workerNode = JSON.parse(readFileSync(join(dir, nodeReady), 'utf8')) as { nodeSocket: string; nodeId: string };
    const token = readFileSync(join(dir, 'token'), 'utf8').trim();
    // The head script is a driver attached to the head's node.
    head = spawn(process.execPath, ['--import', 'tsx', here('./head.ts')], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...env, TSRAY_ADDRESS: 'auto' },
    });
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      head!.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        if (/head ready at/.test(buf)) resolve();
      });
      head!.on('exit', (c) => reject(new Error(`head exited (${c}): ${buf}`)));
    });
    // The second process runs on the other node: it finds the actor through the GCS.
    const { stdout } = await run(process.execPath, ['--import', 'tsx', here('./worker.ts')], {
      env: { ...env, TSRAY_ADDRESS: workerNode.nodeSocket, TSRAY_TOKEN: token },
      cwd: root,
      timeout: 60_000,
    });
    const results = JSON.parse(stdout.trim()) as string[];
    expect(results).toHaveLength(10);
    expect(results.every((r) => typeof r === 'string' && r.length > 0)).toBe(true);
    // Without a scheduler (the head script stopped): the not-found message.
    head.kill('SIGINT');
    await new Promise((r) => head!.on('close', r));
    head = undefined;
    const { stdout: missing } = await run(process.execPath, ['--import', 'tsx', here('./worker.ts')], {
      env: { ...env, TSRAY_ADDRESS: workerNode.nodeSocket, TSRAY_TOKEN: token },
      cwd: root,
      timeout: 60_000,
    });
    expect(missing).toContain('ModelServer not found in the cluster');
  } finally {
    if (head) {
      head.kill('SIGKILL');
      await new Promise((r) => head!.on('close', r));
    }
    await run(process.execPath, [cli, 'stop'], { env, timeout: 60_000 }).catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  }
});
