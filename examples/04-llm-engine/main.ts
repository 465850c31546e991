/**
 * The seed's practice 1: deploy an engine in its own process (num_gpus=2 with vLLM on a GPU node; a
 * CPU engine with the tiny local model otherwise), print the node list, generate four prompts with
 * temperature 0.8 and top_p 0.95, then stream one.
 *
 * Run: npx tsx examples/04-llm-engine/main.ts     (TSRAY_MODEL=<folder> for another model)
 */
import { clusterInfo, clusterResources, init, shutdown } from '@tsray/core';
import { ensureTinyModel, LLMEngine } from '@tsray/vllm-bridge';

await init();
const resources = await clusterResources();
console.log('nodes:', JSON.stringify([{ NodeID: clusterInfo()!.nodeId, Alive: true, Resources: resources }]));
const gpus = resources['GPU'] ?? 0;
const model = process.env['TSRAY_MODEL'] ?? ensureTinyModel(process.env['TSRAY_PYTHON'] ?? '.venv/bin/python');
const engine = await LLMEngine.deploy({ model, numGpus: gpus >= 2 ? 2 : 0 });
const prompts = ['Hello, my name is', 'The president of the United States is', 'The capital of France is', 'The future of AI is'];
const generated = await engine.generate(prompts, { temperature: 0.8, topP: 0.95, maxTokens: 16 });
console.log('Input Text:');
console.log(prompts);
console.log('Generated Text:');
console.log(generated.map((c) => c.text));
process.stdout.write('Streamed: ');
for await (const d of engine.stream('Once upon a time', { maxTokens: 12, temperature: 0 })) process.stdout.write(d.text);
process.stdout.write('\n');
await engine.shutdown();
await shutdown();
