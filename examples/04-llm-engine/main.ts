/**
 * The seed's practice 1: deploy an engine in its own process (num_gpus=2 with vLLM on a GPU node; a
 * CPU engine with SmolLM2-135M-Instruct (converted once from its PyPI wheel, `ensureModel`) otherwise), print the node list, generate four prompts with
 * temperature 0.8 and top_p 0.95, then stream a greedy answer to a chat question.
 *
 * Run: npx tsx examples/04-llm-engine/main.ts     (TSRAY_MODEL=<folder> for another model)
 */
import { clusterInfo, clusterResources, init, shutdown } from '@tsray/core';
import { ensureModel, LLMEngine } from '@tsray/vllm-bridge';

await init();
const resources = await clusterResources();
console.log('nodes:', JSON.stringify([{ NodeID: clusterInfo()!.nodeId, Alive: true, Resources: resources }]));
const gpus = resources['GPU'] ?? 0;
const model = process.env['TSRAY_MODEL'] ?? ensureModel('smollm2-135m-instruct', { python: process.env['TSRAY_PYTHON'] ?? '.venv/bin/python' });
const engine = await LLMEngine.deploy({ model, numGpus: gpus >= 2 ? 2 : 0 });
const prompts = ['Hello, my name is', 'The president of the United States is', 'The capital of France is', 'The future of AI is'];
const generated = await engine.generate(prompts, { temperature: 0.8, topP: 0.95, maxTokens: 16 });
console.log('Input Text:');
console.log(prompts);
console.log('Generated Text:');
console.log(generated.map((c) => c.text));
process.stdout.write('Streamed: ');
const question = { messages: [{ role: 'user' as const, content: 'What is the capital of France?' }] };
for await (const d of engine.stream(question, { maxTokens: 24, temperature: 0 })) process.stdout.write(d.text);
process.stdout.write('\n');
await engine.shutdown();
await shutdown();
