/**
 * The seed's practice 3, DP ranks, on an embedded local cluster: N independent engines (one per
 * placement-group bundle) behind a least-loaded router, results in input order, plus a call to one
 * rank. (Practice 2, instances with GPUs [1, 1, 2, 2] gathered at once, is examples/06-multi-instance.)
 * With GPUs and vLLM: vLLM engines, one GPU per rank. Without: the HF transformers backend on CPU.
 * The model is SmolLM2-135M-Instruct (a real model, converted once from its PyPI wheel by `ensureModel`),
 * so the answers are readable: greedy decoding (temperature 0) answers "The capital of France is Paris."
 * and gives the same text on every rank.
 *
 * Run: npx tsx examples/05-data-parallel/main.ts      (TSRAY_MODEL=<folder> to use another model)
 */
import { execFileSync } from 'node:child_process';
import { clusterResources, init, shutdown } from '@tsray/core';
import { DataParallel, ensureModel, type Prompt } from '@tsray/vllm-bridge';

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
const model = process.env['TSRAY_MODEL'] ?? ensureModel('smollm2-135m-instruct', { python });
console.log(`cluster: node ${info.nodeId}, ${JSON.stringify(resources)}`);
console.log(`engines: ${backend} on ${backend === 'vllm' ? 'GPU' : 'CPU'}, model ${model}`);

// Practice 3: DP ranks behind the router; results come back in input order. Greedy (temperature 0):
// the same question gets the same answer wherever it runs.
const params = { temperature: 0, maxTokens: 32 };
const dp = await DataParallel.deploy({ model, backend, ranks: 2, gpusPerRank: gpus >= 2 ? 1 : 0 });
const questions = [
  'What is the capital of France?',
  'What is 2 + 2?',
  'What color is the sky on a clear day?',
  'Who wrote Romeo and Juliet?',
  'What is the largest planet in the solar system?',
  'What language is spoken in Brazil?',
  'How many days are in a week?',
  'What is the chemical symbol for water?',
];
const chat = (q: string): Prompt => ({ messages: [{ role: 'user', content: q }] });
const outs = await dp.generate(questions.map(chat), params);
for (const [i, c] of outs.entries()) console.log(`dp: ${JSON.stringify(questions[i])} -> ${JSON.stringify(c.text)}`);
// A call to one rank each: the same greedy answer from both.
const [r0] = await dp.rank(0).generate(chat(questions[0]!), params);
const [r1] = await dp.rank(1).generate(chat(questions[0]!), params);
console.log(`rank 0 directly: ${JSON.stringify(r0!.text)}`);
console.log(`rank 1 directly: ${JSON.stringify(r1!.text)}`);
console.log(`greedy identical across ranks: ${r0!.text === r1!.text}`);
console.log(`served per rank: ${(await dp.stats()).map((s) => s.served).join(', ')}`);
await dp.shutdown();
await shutdown();
