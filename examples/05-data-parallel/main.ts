/**
 * The seed's practice 3, DP ranks, on an embedded local cluster: N independent engines (one per
 * placement-group bundle) behind a least-loaded router, results in input order, plus a call to one
 * rank. (Practice 2, instances with GPUs [1, 1, 2, 2] gathered at once, is examples/06-multi-instance.)
 * With GPUs and vLLM: vLLM engines, one GPU per rank. Without: the HF transformers backend on CPU
 * with the tiny local model (tools/build-tiny-model.py).
 *
 * Run: npx tsx examples/05-data-parallel/main.ts      (TSRAY_MODEL=<folder> to use another model)
 */
import { execFileSync } from 'node:child_process';
import { clusterResources, init, shutdown } from '@tsray/core';
import { DataParallel, ensureTinyModel } from '@tsray/vllm-bridge';

const info = await init();
const python = process.env['TSRAY_PYTHON'] ?? '.venv/bin/python';
const resources = await clusterResources();
const gpus = resources['GPU'] ?? 0;
let hasVllm = false;
try {
  execFileSync(python, ['-c', 'import vllm'], { stdio: 'ignore' });
  hasVllm = true;
} catch {
  /* CPU engine */
}
const backend = gpus > 0 && hasVllm ? 'vllm' : 'transformers';
const model = process.env['TSRAY_MODEL'] ?? ensureTinyModel(python);
console.log(`cluster: node ${info.nodeId}, ${JSON.stringify(resources)}`);
console.log(`engines: ${backend} on ${backend === 'vllm' ? 'GPU' : 'CPU'}, model ${model}`);

// Practice 3: DP ranks behind the router; results come back in input order.
const params = { temperature: 0.8, topP: 0.95, maxTokens: 16, seed: 0 };
const dp = await DataParallel.deploy({ model, backend, ranks: 2, gpusPerRank: gpus >= 2 ? 1 : 0 });
const prompts = [
  'Hello, my name is',
  'The president of the United States is',
  'The capital of France is',
  'The future of AI is',
  'Once upon a time',
  'In a galaxy far away',
  'The quick brown fox',
  'To be or not to be',
];
const outs = await dp.generate(prompts, params);
for (const [i, c] of outs.entries()) console.log(`dp: ${JSON.stringify(prompts[i])} -> ${JSON.stringify(c.text)}`);
const [direct] = await dp.rank(1).generate('A call to rank 1:', { maxTokens: 8, temperature: 0 });
console.log(`rank 1 directly: ${JSON.stringify(direct!.text)}`);
console.log(`served per rank: ${(await dp.stats()).map((s) => s.served).join(', ')}`);
await dp.shutdown();
await shutdown();
