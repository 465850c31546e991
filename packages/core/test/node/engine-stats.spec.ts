/**
 * EngineStatsTable alone: the latest report per engine, stale engines dropped, the bound per node.
 */
import { describe, expect, it } from 'vitest';
import { ENGINE_STALE_MS, EngineStatsTable, MAX_ENGINES, type EngineReport } from '../../src/node/engine-stats.js';

const report = (actorId: string, over: Partial<EngineReport> = {}): string =>
  JSON.stringify({
    actorId,
    name: '',
    model: 'tiny',
    backend: 'transformers',
    rank: 0,
    pid: 1,
    tensorParallelSize: 1,
    gpuIds: [],
    running: 0,
    waiting: 0,
    kvCacheUsage: 0,
    tokensPerS: 0,
    ttftP50Ms: null,
    ttftP99Ms: null,
    requestsFinished: 0,
    ...over,
  });

describe('EngineStatsTable', () => {
  it('keeps the latest report of each engine and drops an engine that stopped reporting', () => {
    let now = 1_000;
    const t = new EngineStatsTable(
      () => 'node-a',
      () => now,
    );
    t.record(report('e1', { running: 1 }));
    t.record(report('e2'));
    now += 500;
    t.record(report('e1', { running: 3, tokensPerS: 12.5 }));
    expect(t.list().map((r) => [r.actorId, r.running, r.tokensPerS, r.nodeId, r.reportedAt])).toEqual([
      ['e2', 0, 0, 'node-a', 1_000],
      ['e1', 3, 12.5, 'node-a', 1_500],
    ]);
    now = 1_000 + ENGINE_STALE_MS + 1;
    expect(t.list().map((r) => r.actorId)).toEqual(['e1']);
  });

  it(`keeps at most ${MAX_ENGINES} engines (the oldest report goes)`, () => {
    const t = new EngineStatsTable(() => 'node-a');
    for (let i = 0; i <= MAX_ENGINES; i++) t.record(report(`e${i}`));
    const ids = t.list().map((r) => r.actorId);
    expect(ids).toHaveLength(MAX_ENGINES);
    expect(ids).not.toContain('e0');
  });

  it('refuses a report with a missing field or a wrong type, naming it', () => {
    const t = new EngineStatsTable(() => 'node-a');
    expect(() => t.record(report(''))).toThrow(/actorId is missing/);
    expect(() => t.record(report('e', { gpuIds: [{}] as unknown as number[] }))).toThrow(/gpuIds/);
    expect(() => t.record('[1]')).toThrow(/actorId/);
    expect(() => t.record('null')).toThrow(/JSON object/);
  });
});
