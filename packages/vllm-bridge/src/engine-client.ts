/**
 * The one interface every engine front implements (`LLMEngine`, `DataParallel`, `MoEDataParallel`),
 * so that callers such as the OpenAI server depend on the contract and never on a concrete class.
 * @module
 */
import type { ChatMessage, Completion, EngineInfo, EngineState, EngineStats, Prompt, SamplingParams, StreamDelta } from './engine.js';

/** Tokenizer calls an engine answers (the /tokenize and /detokenize endpoints use them). */
export interface EngineTokenizer {
  /** Token ids of a prompt (or of a chat rendered with the model's template). */
  tokenize(prompt: string | ChatMessage[], options?: { addSpecialTokens?: boolean }): Promise<number[]>;
  /** The text of token ids. */
  detokenize(tokenIds: number[]): Promise<string>;
}

/**
 * An engine, or a group of engines, that serves one model. A group reports its members: `stats()`
 * and `info()` give one entry per engine that can answer (one engine: a single object).
 */
export interface EngineClient {
  /** The model folder served. */
  readonly model: string;
  /** 'ready' when a request can be served now (a group: at least one member is ready). */
  readonly state: EngineState;
  /** Why the client is dead, once it is. */
  readonly error: Error | undefined;
  /** Settles when a request can be served (resolves) or never can again (rejects). */
  ready(): Promise<void>;
  /** Stream one request's deltas. */
  stream(prompt: Prompt, params?: SamplingParams, options?: { signal?: AbortSignal }): AsyncGenerator<StreamDelta, void, undefined>;
  /** Complete prompts; results in input order. */
  generate(prompts: Prompt | Prompt[], params?: SamplingParams, options?: { signal?: AbortSignal }): Promise<Completion[]>;
  /** Load: one engine's, or one entry per member of a group. */
  stats(): Promise<EngineStats | EngineStats[]>;
  /** Where and how the engine(s) run: one engine's, or one entry per ready member of a group. */
  info(): Promise<EngineInfo | EngineInfo[]>;
  /** The tokenizer of an engine that can answer now; undefined when none can. */
  tokenizer(): EngineTokenizer | undefined;
  /** Stop the engine(s). */
  shutdown(): Promise<void>;
}

/** A client's load as a list, one entry per engine. */
export async function statsList(client: EngineClient): Promise<EngineStats[]> {
  return [await client.stats()].flat();
}
