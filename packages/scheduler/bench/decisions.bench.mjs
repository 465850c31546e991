// Placement decisions per second: 100k tasks over 1,000 synthetic nodes (goal >= 100k/s).
// Build first (npx tsc --build packages/scheduler/tsconfig.lib.json), then:
//   node packages/scheduler/bench/decisions.bench.mjs [--tasks 100000] [--nodes 1000] [--json]
// Each decision is schedule() + allocate() on the chosen node (+ release() of finished tasks), so the
// number is end to end for the scheduler's bookkeeping. Scenarios:
//   light   DEFAULT, cluster kept at ~30% CPU (below the spread threshold): the usual case
//   loaded  DEFAULT, cluster kept at ~85% CPU: every node scored, top-k selected
//   fill    DEFAULT, nothing finishes: the cluster fills up and later decisions are `wait`
//   local   DEFAULT with localNodeId (locality preference), ~30% CPU
//   spread  SPREAD, ~30% CPU
//   affinity NODE_AFFINITY soft to a random node, ~30% CPU
import { ClusterView, NodeResources, ResourceRequest, schedule } from '../dist/index.js';

const args = process.argv.slice(2);
const arg = (name, d) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const TASKS = arg('--tasks', 100_000);
const NODES = arg('--nodes', 1000);
const JSON_OUT = args.includes('--json');

function mulberry32(a) {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function makeCluster(n) {
  const view = new ClusterView();
  let cpus = 0;
  for (let i = 0; i < n; i++) {
    const gpu = i % 5 === 0;
    const total = gpu
      ? { CPU: 32, GPU: 8, memory: 512e9, object_store_memory: 128e9, 'accelerator_type:A100': 1 }
      : { CPU: 64, memory: 256e9, object_store_memory: 64e9, ...(i % 5 === 1 ? { ssd: 16 } : {}) };
    cpus += total.CPU;
    view.addNode(`node-${String(i).padStart(5, '0')}`, new NodeResources(total, { labels: { zone: `z${i % 4}` } }));
  }
  return { view, cpus };
}

const SHAPES = [
  [0.75, ResourceRequest.of({ CPU: 1 })],
  [0.12, ResourceRequest.of({ CPU: 0.5 })],
  [0.05, ResourceRequest.of({ CPU: 1, GPU: 1 })],
  [0.03, ResourceRequest.of({ CPU: 1, GPU: 0.25 })],
  [0.05, ResourceRequest.of({ CPU: 2, memory: 4e9, ssd: 1 })],
];

function taskStream(count, rng) {
  const out = new Array(count);
  for (let i = 0; i < count; i++) {
    let x = rng();
    let s = SHAPES[SHAPES.length - 1][1];
    for (const [p, r] of SHAPES) {
      if (x < p) {
        s = r;
        break;
      }
      x -= p;
    }
    out[i] = s;
  }
  return out;
}

function run(name, { strategy = 'DEFAULT', cpuLoad, local = false, affinity = false }) {
  const { view, cpus } = makeCluster(NODES);
  const rng = mulberry32(42);
  const opts = { rng, ...(local ? { localNodeId: 'node-00003' } : {}) };
  const ids = view.nodeIds();
  const affinityStrategies = affinity ? ids.map((nodeId) => ({ type: 'NODE_AFFINITY', nodeId, soft: true })) : null;
  const warm = taskStream(20_000, rng);
  const tasks = taskStream(TASKS, rng);
  const cap = cpuLoad === undefined ? Infinity : cpuLoad * cpus;
  const running = []; // FIFO of [node, allocation]
  let head = 0;
  let used = 0;
  const counts = { node: 0, wait: 0, infeasible: 0 };
  const go = (list, count) => {
    for (let i = 0; i < list.length; i++) {
      const req = list[i];
      while (used + req.cpu / 1e4 > cap && head < running.length) {
        const [node, a] = running[head];
        running[head++] = undefined;
        node.release(a);
        used -= a.amounts.get('CPU') / 1e4;
      }
      const st = affinityStrategies ? affinityStrategies[(rng() * affinityStrategies.length) | 0] : strategy;
      const d = schedule(req, view, st, opts);
      if (count) counts[d.kind]++;
      if (d.kind === 'node') {
        const node = view.get(d.nodeId);
        const a = node.allocate(req);
        if (a === null) throw new Error('policy chose a node that cannot fit');
        running.push([node, a]);
        used += req.cpu / 1e4;
      }
    }
  };
  go(warm, false);
  const t0 = performance.now();
  go(tasks, true);
  const ms = performance.now() - t0;
  const perSec = Math.round((tasks.length / ms) * 1000);
  return { scenario: name, tasks: tasks.length, nodes: NODES, ms: Math.round(ms), decisionsPerSec: perSec, ...counts };
}

const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
const SCENARIOS = {
  light: { cpuLoad: 0.3 },
  loaded: { cpuLoad: 0.85 },
  fill: {},
  local: { cpuLoad: 0.3, local: true },
  spread: { strategy: 'SPREAD', cpuLoad: 0.3 },
  affinity: { cpuLoad: 0.3, affinity: true },
};
const results = Object.entries(SCENARIOS)
  .filter(([name]) => only === undefined || only.split(',').includes(name))
  .map(([name, s]) => run(name, s));
if (JSON_OUT) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
else {
  for (const r of results) {
    process.stdout.write(
      `${r.scenario.padEnd(9)} ${String(r.decisionsPerSec).padStart(9)} decisions/s  (${r.tasks} tasks, ${r.nodes} nodes, ${r.ms} ms; node=${r.node} wait=${r.wait} infeasible=${r.infeasible})\n`,
    );
  }
}
