/**
 * The seed's practice 2, several engine instances with different GPU counts:
 *
 *   use_gpus = [1, 1, 2, 2]
 *   vllm_instances = [vLLMWrapper.options(num_gpus=n).remote() for n in use_gpus]
 *   generate_tasks = [vllm.generate.remote(text) for vllm, text in zip(vllm_instances, input_texts)]
 *   generated_texts = ray.get(generate_tasks)
 *
 * With 6+ GPUs and vLLM: vLLM engines, tensor parallel = GPU count. Without: an embedded cluster with
 * 8 *fake* GPUs (`init({ numGpus: 8 })`: GPU pinning is logical, CUDA_VISIBLE_DEVICES per process) and
 * the HF transformers backend on CPU with SmolLM2-135M-Instruct (converted once from its PyPI wheel, `ensureModel`). Either way each instance reports the
 * CUDA_VISIBLE_DEVICES its process got, and the sets are disjoint.
 *
 * Run: npx tsx examples/06-multi-instance/main.ts      (TSRAY_MODEL=<folder> to use another model)
 */
import { execFileSync } from 'node:child_process';
import { clusterResources, init, shutdown } from '@tsray/core';
import { ensureModel, LLMEngine } from '@tsray/vllm-bridge';

const python = process.env['TSRAY_PYTHON'] ?? '.venv/bin/python';
let real = false;
try {
  execFileSync(python, ['-c', 'import sys, torch, vllm; sys.exit(0 if torch.cuda.device_count() >= 6 else 1)'], { stdio: 'ignore' });
  real = true;
} catch {
  /* no vLLM or not enough GPUs: fake GPUs, CPU engines */
}
await init(real ? { python } : { numGpus: 8, python });
const backend = real ? 'vllm' : 'transformers';
const model = process.env['TSRAY_MODEL'] ?? ensureModel('smollm2-135m-instruct', { python });
console.log(`cluster: ${JSON.stringify(await clusterResources())}${real ? '' : ' (fake GPUs)'}`);
console.log(`engines: ${backend}, model ${model}`);

const useGpus = [1, 1, 2, 2];
const instances = await Promise.all(useGpus.map((n) => LLMEngine.deploy({ model, backend, numGpus: n, engineArgs: real ? {} : { max_num_seqs: 8 } })));
const inputTexts = ['The capital of France is', 'The capital of Italy is', 'The capital of Japan is', 'The capital of Germany is'];
// Greedy: each instance's answer can be checked (a real model, SmolLM2, on CPU).
const params = { temperature: 0, maxTokens: 12 };
// One "get" over all instances: every generate runs at once, results in instance order.
const [generated, infos] = await Promise.all([
  Promise.all(instances.map((engine, i) => engine.generate(inputTexts[i]!, params))),
  Promise.all(instances.map((engine) => engine.info())),
]);
for (const [i, [c]] of generated.entries()) {
  console.log(
    `instance ${i} (gpus ${useGpus[i]}, CUDA_VISIBLE_DEVICES=${infos[i]!.cuda_visible_devices}, pid ${infos[i]!.pid}): ${JSON.stringify(inputTexts[i])} -> ${JSON.stringify(c!.text)}`,
  );
}
const devices = infos.flatMap((x) => (x.cuda_visible_devices ?? '').split(',').filter((d) => d !== ''));
console.log(`GPUs handed out: ${devices.length}, disjoint: ${new Set(devices).size === devices.length}`);
await Promise.all(instances.map((e) => e.shutdown()));
await shutdown();
