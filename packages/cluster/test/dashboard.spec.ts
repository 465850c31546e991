/// <reference lib="dom" />
// (The page callbacks below run in the browser, so this spec type-checks against the DOM too.)
/**
 * The web dashboard (issue #20 acceptance 1), in a real headless browser: Debian's chromium driven by
 * puppeteer-core. A 3-node cluster (one with 2 fake GPUs) with running tasks, a failing actor, a
 * failing task, a placement group with an actor on its GPU bundle, a job, an LLM engine on CPU (the
 * tiny random model, transformers backend) and 10,000 finished tasks; each page shows them (a
 * screenshot per page is saved, its path printed), a change reaches an open page through the event
 * stream (a new actor; the engine's row after a request), the task list paginates, `tsray list actors`
 * shows GPU ids and the engine's TP size, and no request succeeds without the cluster token. The render time of the 10,000-task page is measured in
 * bench/tsray/dashboard-render.mjs, not here.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ActorHandle, get, init, placementGroup, shutdown, type ObjectRef } from '@tsray/core';
import { ensureTinyModel, LLMEngine } from '@tsray/vllm-bridge';
import { tsray } from './fixtures/cli.js';
import { TestCluster, until } from './fixtures/cluster-harness.js';
import { apiKeyFor } from '../src/http/api-key.js';
import { Counter, Doomed, failing, GpuHolder, heldTask, impossible, noop } from './fixtures/dashboard-fns.js';

/** The system browser (Debian's chromium; `.ci/run` installs it). TSRAY_CHROMIUM overrides. */
const CHROMIUM = process.env['TSRAY_CHROMIUM'] ?? '/usr/bin/chromium';
const FINISHED = 10_000;
/** The repository's Python environment (tools/setup-python.sh): engine actors run in it. */
const PYTHON = fileURLToPath(new URL('../../../.venv/bin/python', import.meta.url));

interface ActorRow {
  actorId: string;
  className: string;
  name: string;
  pid: number;
  gpuIds: (number | string)[];
}

describe('web dashboard in a headless browser', () => {
  const c = new TestCluster();
  // The screenshots are test artifacts: kept after the run (in TSRAY_TEST_ARTIFACTS if set), their paths printed.
  const shots = mkdtempSync(join(process.env['TSRAY_TEST_ARTIFACTS'] ?? tmpdir(), 'tsray-dashboard-shots-'));
  const release = join(c.tmp, 'release-held-tasks');
  let browser: Browser;
  let page: Page;
  let base: string;
  let held: ObjectRef<number>[] = [];
  const keep: ActorHandle<unknown>[] = [];
  let jobId: string;
  let jobGo: string;
  let engine: LLMEngine | undefined;
  let gpuActor: ReturnType<ReturnType<typeof GpuHolder.options>['remote']>;

  async function api(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${base}${path}`, { ...init, headers: { authorization: `Bearer ${apiKeyFor(c.token)}`, ...(init.headers ?? {}) } });
  }

  /** Open a page by its hash and wait until it rendered with `text` in it; save its screenshot (as `shot`.png). */
  async function show(name: string, text: string, shot = name.replace('/', '-')): Promise<string> {
    await page.goto(`${base}/dashboard/#${name}`, { waitUntil: 'domcontentloaded' });
    await page.waitForFunction(
      // biome-ignore lint/performance/useDomNodeTextContent: the text as rendered (layout-aware) is what a user sees
      (n: string, t: string) => document.getElementById('main')?.dataset['page'] === n.split('/')[0] && document.body.innerText.includes(t),
      { timeout: 30_000 },
      name,
      text,
    );
    const file = join(shots, `${shot}.png`);
    await page.screenshot({ path: file, fullPage: true });
    console.log(`dashboard screenshot: ${file}`);
    // biome-ignore lint/performance/useDomNodeTextContent: the text as rendered (layout-aware) is what a user sees
    return page.evaluate(() => document.body.innerText);
  }

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: install Debian's chromium (apt-get install chromium) or set TSRAY_CHROMIUM`);
    const env = { TSRAY_PYTHON: PYTHON };
    await c.startHead({ numCpus: 2, env });
    await c.addNode({ numCpus: 2, numGpus: 2, env });
    await c.addNode({ numCpus: 2, env });
    base = c.head.ready.dashboardUrl!;
    c.attachHere();
    await init({ address: 'auto', namespace: 'dashboard' });
    for (let i = 0; i < FINISHED; i += 1000) await get(Array.from({ length: 1000 }, (_, j) => noop.remote(i + j)));
    held = [heldTask.remote(release), heldTask.remote(release)];
    keep.push(Doomed.remote());
    // Never runs (no node has dash_missing); shutdown() cancels it.
    void impossible.remote();
    const pg = placementGroup([{ CPU: 1 }, { GPU: 1 }], { name: 'dash-pg', strategy: 'SPREAD' });
    await get(pg.ready());
    // An actor on the group's GPU bundle: its GPU id shows on the nodes, actors and groups pages.
    gpuActor = GpuHolder.options({ numCpus: 0, numGpus: 1, schedulingStrategy: { type: 'PLACEMENT_GROUP', placementGroup: pg, bundleIndex: 1 } }).remote();
    keep.push(gpuActor);
    expect(await get(gpuActor.visible.remote())).toMatch(/^\d$/);
    await expect(get(failing.remote())).rejects.toThrow('dashboard-task-failure on purpose');
    // An LLM engine on CPU: the tiny random-weight model with the transformers backend.
    engine = await LLMEngine.deploy({ model: ensureTinyModel(PYTHON), backend: 'transformers', name: 'dash-llm' });
    jobGo = join(c.tmp, 'job-go');
    const submitted = await api('/api/jobs/', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        entrypoint: `echo dashboard-job-first-line; while [ ! -e ${jobGo} ]; do sleep 0.05; done; echo dashboard-job-second-line`,
        submission_id: 'dash-job-1',
      }),
    });
    expect(submitted.status).toBe(200);
    jobId = ((await submitted.json()) as { submission_id: string }).submission_id;
    await until(
      async () => ((await (await api('/api/v0/tasks')).json()) as { result: { state: string }[] }).result.filter((t) => t.state === 'RUNNING').length === 2,
      30_000,
      'both held tasks to run',
    );
    await until(
      async () => ((await (await api('/api/cluster_status')).json()) as { pendingDemand: { infeasible: boolean }[] }).pendingDemand.some((d) => d.infeasible),
      30_000,
      'the infeasible task to show as demand',
    );
    await until(
      async () => ((await (await api('/api/v0/actors')).json()) as { result: { state: string }[] }).result.some((a) => a.state === 'DEAD'),
      30_000,
      'the doomed actor to die',
    );
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] });
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    const entry = await page.goto(`${base}/dashboard?token=${encodeURIComponent(apiKeyFor(c.token))}`, { waitUntil: 'domcontentloaded' });
    expect(entry?.status()).toBe(200);
    expect(page.url()).toBe(`${base}/dashboard/`);
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await engine?.shutdown().catch(() => undefined);
    writeFileSync(release, '');
    if (held.length) await get(held).catch(() => undefined);
    await shutdown();
    c.detachHere();
    await c.stop();
  }, 120_000);

  it('overview shows the nodes, CPU/GPU/memory used of total, object store and the counts', async () => {
    const text = await show('overview', 'nodes alive');
    expect(text).toMatch(/nodes alive\s*3/);
    expect(text).toMatch(/CPU used \/ total\s*[\d.]+ \/ 6\b/);
    expect(text).toMatch(/GPU used \/ total\s*1 \/ 2\b/); // the placement group holds one GPU
    expect(text).toMatch(/object_store_memory used \/ total/);
    expect(text).toMatch(/memory used \/ total/);
    expect(text).toMatch(/RUNNING\s*2/);
    expect(text).toMatch(/DEAD\s*1/);
    expect(text).toMatch(/infeasible\s*1/);
    expect(text).toMatch(/task\s+impossible\s+1\s+yes\s+dash_missing/);
  });

  async function gpuHolder(): Promise<ActorRow> {
    const actors = ((await (await api('/api/v0/actors')).json()) as { result: ActorRow[] }).result;
    return actors.find((a) => a.className === 'GpuHolder')!;
  }

  it('nodes page lists the 3 nodes with their resources and which process holds each GPU id', async () => {
    const holder = await gpuHolder();
    expect(holder.gpuIds).toHaveLength(1);
    const gpu = holder.gpuIds[0]!;
    expect(String(gpu)).toBe(await get(gpuActor.visible.remote())); // the id its process sees
    const text = await show('nodes', `GPU ${gpu} → pid ${holder.pid}`);
    const ids = ((await (await api('/api/v0/nodes')).json()) as { result: { nodeId: string }[] }).result.map((n) => n.nodeId.slice(0, 12));
    expect(ids).toHaveLength(3);
    for (const id of ids) expect(text).toContain(id);
    expect(text).toContain('head');
    expect(text).toContain(`GPU ${gpu} → pid ${holder.pid} (actor ${holder.actorId.slice(0, 12)})`);
    expect(await page.$$eval('main tbody tr', (r) => r.length)).toBe(3);
    // The same in the page's data: the node's GPU ids in use, each with its worker process and actor.
    const nodes = (await (await api('/dashboard/api/nodes')).json()) as { items: { gpusInUse: { gpuId: unknown; pid: number; actorId?: string }[] }[] };
    expect(nodes.items.flatMap((n) => n.gpusInUse)).toEqual([{ gpuId: gpu, pid: holder.pid, actorId: holder.actorId }]);
  });

  it("tsray list actors shows each actor's GPU ids and the engine's tensor-parallel size", async () => {
    const holder = await gpuHolder();
    const tokenFile = join(c.tmp, 'cli-token');
    writeFileSync(tokenFile, c.token, { mode: 0o600 });
    const out = await tsray(['list', 'actors', '--address', base, '--token-file', tokenFile], { TMPDIR: c.tmp });
    expect(out.code, out.stderr).toBe(0);
    const lines = out.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ACTOR_ID\s+CLASS\s+NAME\s+STATE\s+NODE_ID\s+PID\s+RESTARTS\s+GPU_IDS\s+TP$/);
    expect(lines.find((l) => l.startsWith(holder.actorId))).toMatch(
      new RegExp(`GpuHolder\\s+-\\s+ALIVE\\s+\\S+\\s+${holder.pid}\\s+0\\s+${holder.gpuIds[0]}\\s+-$`),
    );
    // The engine (on CPU: no GPU ids; transformers shards over 1 device).
    expect(lines.find((l) => /\sdash-llm\s/.test(l))).toMatch(/EngineActor\s+dash-llm\s+ALIVE\s+\S+\s+\d+\s+0\s+-\s+1$/);
  });

  it('actors page shows the failed actor with its state and death cause', async () => {
    const text = await show('actors', 'Doomed');
    expect(text).toContain('DEAD');
    expect(text).toContain('dashboard-doomed-actor failed on purpose');
  });

  it('placement groups page maps each bundle to its node', async () => {
    const text = await show('placement_groups', 'dash-pg');
    expect(text).toContain('CREATED');
    expect(text).toContain('SPREAD');
    const pg = ((await (await api('/api/v0/placement_groups')).json()) as { result: { name: string; bundleNodes: string[] }[] }).result.find(
      (g) => g.name === 'dash-pg',
    )!;
    expect(text).toContain(`#0 CPU:1 → ${pg.bundleNodes[0]!.slice(0, 12)} → GPU —`);
    expect(text).toContain(`#1 GPU:1 → ${pg.bundleNodes[1]!.slice(0, 12)} → GPU [${(await gpuHolder()).gpuIds[0]}]`);
  });

  it('tasks page shows counts by state and one page of the 10,000 finished tasks', async () => {
    const text = await show('tasks', 'FINISHED');
    const all = (await (await api('/dashboard/api/tasks?limit=1')).json()) as { total: number; counts: Record<string, number> };
    expect(all.counts['FINISHED']).toBeGreaterThanOrEqual(FINISHED);
    expect(all.counts['RUNNING']).toBe(2);
    expect(text).toMatch(/RUNNING\s*2/);
    expect(text).toContain(`1–50 of ${all.total}`);
    expect(await page.$$eval('main table.tasks tbody tr', (r) => r.length)).toBe(50);
    await page.click('#next');
    await page.waitForFunction((t: number) => document.getElementById('pager-info')?.textContent === `51–100 of ${t}`, { timeout: 30_000 }, all.total);
    expect(await page.$$eval('main table.tasks tbody tr', (r) => r.length)).toBe(50);
  });

  it('tasks page lists the recent failures with error class, message and the remote stack', async () => {
    const text = await show('tasks', 'dashboard-task-failure on purpose', 'tasks-failures');
    expect(text).toContain('Recent failures');
    // The task's row, wherever it sorts: other failures of this cluster (the Doomed actor's constructor) can
    // be more recent.
    const rows = await page.$$eval('main table.failures tbody tr', (rs) =>
      rs.map((r) => ({
        // biome-ignore lint/performance/useDomNodeTextContent: the text as rendered (layout-aware) is what a user sees
        text: (r as HTMLElement).innerText,
        stack: r.querySelector('pre.stack')?.textContent ?? '',
      })),
    );
    const row = rows.find((r) => r.text.includes('dashboardFailingTask'));
    expect(row, rows.map((r) => r.text).join('\n---\n')).toBeDefined();
    expect(row!.text).toContain('RangeError');
    expect(row!.text).toContain('dashboard-task-failure on purpose');
    // The stack as the worker printed it: the throw site in the fixture module.
    const stack = row!.stack;
    expect(stack).toMatch(/^RangeError: dashboard-task-failure on purpose\n\s+at (Object\.)?dashboardFailingTask .*dashboard-fns\.ts:\d+/);
  });

  it('LLM engines page shows the engine per rank and its row updates live after a request', async () => {
    const text = await show('engines', 'dash-llm');
    expect(text).toContain('transformers');
    const cell = (cls: string) => page.$eval(`main tr[data-engine] td.${cls}`, (td) => td.textContent ?? '');
    expect(await cell('requests')).toBe('0');
    expect(await cell('ttft50')).toBe('—');
    expect(await cell('kv')).toMatch(/^\d+\.\d%/);
    await page.evaluate(() => {
      (window as unknown as { marker: string }).marker = 'same-document';
    });
    const [done] = await engine!.generate('hello dashboard', { maxTokens: 8, temperature: 0 });
    expect(done!.usage.completionTokens).toBeGreaterThan(0);
    // The engine reports once a second; the open page re-renders on the event stream's change.
    await page.waitForFunction(() => document.querySelector('main tr[data-engine] td.requests')?.textContent === '1', { timeout: 30_000 });
    expect(await page.evaluate(() => (window as unknown as { marker?: string }).marker)).toBe('same-document');
    expect(await cell('ttft50')).toMatch(/^[\d.]+ ms$/);
    expect(await cell('ttft99')).toMatch(/^[\d.]+ ms$/);
    const shot = join(shots, 'engines-after-request.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`dashboard screenshot: ${shot}`);
  });

  it('jobs page shows the job and its log, live', async () => {
    const text = await show(`jobs/${jobId}`, 'dashboard-job-first-line');
    expect(text).toContain('dash-job-1');
    expect(text).toContain('RUNNING');
    writeFileSync(jobGo, '');
    await page.waitForFunction(() => document.getElementById('job-logs')?.textContent?.includes('dashboard-job-second-line'), { timeout: 30_000 });
    // biome-ignore lint/performance/useDomNodeTextContent: the text as rendered (layout-aware) is what a user sees
    await page.waitForFunction(() => document.body.innerText.includes('SUCCEEDED'), { timeout: 30_000 });
    await page.screenshot({ path: join(shots, 'jobs-done.png'), fullPage: true });
  });

  it('an open page updates from the event stream when the cluster changes (no reload)', async () => {
    await show('actors', 'Doomed');
    await page.evaluate(() => {
      (window as unknown as { marker: string }).marker = 'same-document';
    });
    const before = Number(await page.$eval('#main', (m) => (m as HTMLElement).dataset['updates']));
    keep.push(Counter.options({ name: 'dash-late-actor' }).remote());
    // biome-ignore lint/performance/useDomNodeTextContent: the text as rendered (layout-aware) is what a user sees
    await page.waitForFunction(() => document.body.innerText.includes('dash-late-actor'), { timeout: 30_000 });
    expect(await page.evaluate(() => (window as unknown as { marker?: string }).marker)).toBe('same-document');
    expect(Number(await page.$eval('#main', (m) => (m as HTMLElement).dataset['updates']))).toBeGreaterThan(before);
    expect(await page.$eval('#live', (e) => e.textContent)).toBe('live');
  });

  it('no dashboard request succeeds without the token', async () => {
    const routes = [
      '/dashboard',
      '/dashboard/',
      '/dashboard/app.js',
      '/dashboard/style.css',
      '/dashboard/api/overview',
      '/dashboard/api/tasks',
      '/dashboard/api/events',
      `/dashboard/api/jobs/${jobId}/logs`,
      '/api/v0/nodes',
      '/api/jobs/',
    ];
    for (const r of routes) {
      expect((await fetch(`${base}${r}`)).status, r).toBe(401);
      expect((await fetch(`${base}${r}`, { headers: { cookie: 'tsray_dashboard=wrong-token' } })).status, r).toBe(401);
      expect((await fetch(`${base}${r}`, { headers: { authorization: 'Bearer wrong-token' } })).status, r).toBe(401);
    }
    expect((await fetch(`${base}/dashboard?token=wrong-token`, { redirect: 'manual' })).status).toBe(401);
    // The cluster token is not the dashboard's key (the key is derived from it, HKDF).
    expect((await fetch(`${base}/dashboard?token=${encodeURIComponent(c.token)}`, { redirect: 'manual' })).status).toBe(401);
    expect((await fetch(`${base}/dashboard/api/overview`, { headers: { authorization: `Bearer ${c.token}` } })).status).toBe(401);
    // The dashboard's cookie is no key to the Jobs API (a cross-site form must not submit jobs).
    expect((await fetch(`${base}/api/jobs/`, { headers: { cookie: `tsray_dashboard=${apiKeyFor(c.token)}` } })).status).toBe(401);
    expect((await fetch(`${base}/dashboard/api/overview`, { headers: { cookie: `tsray_dashboard=${apiKeyFor(c.token)}` } })).status).toBe(200);
    // With the token the same routes answer (events is a stream: only its status is read).
    for (const r of routes.filter((x) => x !== '/dashboard/api/events')) expect((await api(r, { redirect: 'manual' })).status, r).toBeLessThan(400);
    // A fresh browser profile (no cookie) gets 401 for the page.
    const ctx = await browser.createBrowserContext();
    const p2 = await ctx.newPage();
    const res = await p2.goto(`${base}/dashboard/`);
    expect(res?.status()).toBe(401);
    // biome-ignore lint/performance/useDomNodeTextContent: the text as rendered (layout-aware) is what a user sees
    expect(await p2.evaluate(() => document.body.innerText)).toContain('needs the cluster API key');
    await ctx.close();
  });
});
