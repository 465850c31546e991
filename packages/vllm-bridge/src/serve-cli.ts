#!/usr/bin/env node
/**
 * `tsray-serve`: start a local cluster, deploy an engine (or DP ranks), and serve OpenAI's API.
 *
 *   tsray-serve [--model /models/qwen] [--ranks 2] [--gpus-per-rank 1] [--backend auto|vllm|transformers]
 *               [--port 8000] [--host 127.0.0.1] [--served-model-name qwen] [--engine-args '{"max_model_len":4096}']
 *               [--api-key KEY] [--max-restarts 3]
 *
 * Without --model: the real default model, SmolLM2-135M-Instruct (`ensureModel`, converted once). The API
 * key also comes from TSRAY_API_KEY or VLLM_API_KEY (as `vllm serve`). An engine whose process dies is
 * restarted up to --max-restarts times (default 3) before the server answers 503 for good.
 *
 * Ctrl-C stops the server, the engines and the cluster.
 * @module
 */
import { parseArgs } from 'node:util';
import { init, nodes, shutdown } from '@tsray/core';
import { config } from '@tsray/core/internal';
import { DataParallel } from './data-parallel.js';
import { LLMEngine } from './engine.js';
import { DEFAULT_MODEL, ensureModel } from './models.js';
import { serveOpenAI } from './openai-server.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      ranks: { type: 'string', default: '1' },
      'gpus-per-rank': { type: 'string' },
      backend: { type: 'string', default: 'auto' },
      port: { type: 'string', default: '8000' },
      host: { type: 'string', default: '127.0.0.1' },
      'served-model-name': { type: 'string' },
      'engine-args': { type: 'string', default: '{}' },
      python: { type: 'string' },
      address: { type: 'string' },
      'api-key': { type: 'string' },
      'max-restarts': { type: 'string', default: '3' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(
      `usage: tsray-serve [--model DIR (default: ${DEFAULT_MODEL})] [--ranks N] [--gpus-per-rank G] [--backend auto|vllm|transformers|scripted] [--port 8000] [--host 127.0.0.1] [--served-model-name NAME] [--engine-args JSON] [--python PATH] [--address auto|HOST:PORT] [--api-key KEY] [--max-restarts 3]\n`,
    );
    process.exit(0);
  }
  const maxRestarts = Number(values['max-restarts']);
  if (!Number.isInteger(maxRestarts) || maxRestarts < 0) {
    process.stderr.write(`tsray-serve: --max-restarts must be an integer >= 0, got ${values['max-restarts']}\n`);
    process.exit(2);
  }
  const apiKey = values['api-key'] ?? config().apiKey ?? process.env['VLLM_API_KEY'];
  let engineArgs: Record<string, unknown>;
  try {
    engineArgs = JSON.parse(values['engine-args']!);
  } catch (e) {
    process.stderr.write(`tsray-serve: --engine-args is not JSON: ${(e as Error).message}\n`);
    process.exit(2);
  }
  // --address (or TSRAY_ADDRESS) joins a running cluster; else an embedded one in this process.
  const address = values.address ?? config().address;
  const info = await init(address ? { address } : values.python ? { python: values.python } : {});
  const gpus = address ? (await nodes()).reduce((g, n) => g + (n.alive ? (n.resourcesTotal['GPU'] ?? 0) : 0), 0) : (info.resources['GPU'] ?? 0);
  const perRank = values['gpus-per-rank'] !== undefined ? Number(values['gpus-per-rank']) : gpus > 0 ? 1 : 0;
  const ranks = Number(values.ranks);
  const backend = values.backend as 'auto' | 'vllm' | 'transformers' | 'scripted';
  const model = values.model ?? ensureModel(DEFAULT_MODEL, values.python ? { python: values.python } : {});
  // The server listens at once and answers 503 (Retry-After) until the model is loaded; DP ranks
  // serve as soon as one of them is ready.
  const target =
    ranks > 1
      ? await DataParallel.deploy({ model, ranks, gpusPerRank: perRank, backend, engineArgs, waitFor: 'none', maxRestarts })
      : await LLMEngine.deploy({ model, numGpus: perRank, backend, engineArgs, wait: false, maxRestarts });
  const server = await serveOpenAI(target, {
    port: Number(values.port),
    host: values.host!,
    ...(values['served-model-name'] ? { modelName: values['served-model-name'] } : {}),
    ...(apiKey ? { apiKey } : {}),
  });
  process.stdout.write(`tsray-serve: ${ranks} rank(s) of ${model} listening on ${server.url}/v1 (503 until ready)\n`);
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await server.close();
    await target.shutdown();
    await shutdown();
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  try {
    await target.ready();
    process.stdout.write(`tsray-serve: ready\n`);
  } catch (e) {
    if (stopping) return;
    // An engine that cannot start (bad model folder, bad engine args) ends the server.
    process.stderr.write(`tsray-serve: ${(e as Error).name}: ${(e as Error).message}\n`);
    await stop(1);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`tsray-serve: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
