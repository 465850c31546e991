/**
 * @module @tsray/vllm-bridge
 * LLM engines (vLLM, or HF transformers where there is no GPU/vLLM) in GPU-pinned Python workers,
 * driven from TypeScript over a direct ZeroMQ data plane with protobuf messages.
 */
export { LLMEngine } from './engine.js';
export type {
  DeployOptions,
  EngineInfo,
  SamplingParams,
  Prompt,
  ChatMessage,
  StreamDelta,
  Completion,
  EngineStats,
  EngineState,
  TokenLogprob,
  TopLogprob,
} from './engine.js';
export { EngineStartError, EngineDeadError, GenerateRequestError, GenerateAbortedError } from './errors.js';
export { DataParallel } from './data-parallel.js';
export type { DataParallelOptions, RankStats } from './data-parallel.js';
export { MoEDataParallel } from './moe-data-parallel.js';
export type { MoEDataParallelOptions, MoERankInfo } from './moe-data-parallel.js';
export { serveOpenAI } from './openai-server.js';
export type { OpenAIServer, OpenAIServerOptions, ServeTarget } from './openai-server.js';
export { samplingParamsSchema, toWireParams } from './sampling-params.js';
export type { EngineClient, EngineTokenizer } from './engine-client.js';
export { statsList } from './engine-client.js';
export { ensureTinyModel } from './tiny-model.js';
export { DEFAULT_MODEL, ensureModel, KNOWN_MODELS } from './models.js';
export type { KnownModel } from './models.js';
