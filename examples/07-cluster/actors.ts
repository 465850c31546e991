/**
 * The actors of the seed's multi-node design: an LLM engine and a CPU scheduler actor that splits
 * inputs into batches of bsz = 2, sends each batch to the engine and flattens the results.
 * ENGINE=echo swaps the engine for a plain echo actor (no model needed).
 */
import { actor, get, type ActorHandle } from '@tsray/core';
import { LLMEngine, type SamplingParams } from '@tsray/vllm-bridge';

export class EchoEngine {
  generate(prompts: string[], _samplingParams?: unknown): string[] {
    return prompts.map((p) => `${p} -> echo`);
  }
}
export const RemoteEchoEngine = actor(EchoEngine);

/** Where the scheduler finds its engine: an echo actor handle, or the name of an LLMEngine. */
export type EngineRef = { kind: 'echo'; handle: ActorHandle<EchoEngine> } | { kind: 'llm'; name: string; namespace: string };

export class VllmScheduler {
  private readonly bsz = 2;
  private llm: Promise<LLMEngine> | undefined;
  constructor(private readonly model: EngineRef) {}

  private async generate(batch: string[], params: SamplingParams): Promise<string[]> {
    if (this.model.kind === 'echo') return get(this.model.handle.generate.remote(batch, null));
    const { name, namespace } = this.model;
    this.llm ??= LLMEngine.connect(name, { namespace });
    const engine = await this.llm;
    return (await engine.generate(batch, params)).map((c) => c.text);
  }

  async schedule(input: string[]): Promise<string[]> {
    const batches = [];
    for (let i = 0; i < input.length; i += this.bsz) batches.push(this.generate(input.slice(i, i + this.bsz), { maxTokens: 8, temperature: 0 }));
    return (await Promise.all(batches)).flat();
  }
}
export const RemoteVllmScheduler = actor(VllmScheduler);
