/**
 * The actors of the seed's multi-node design. The engine here is an echo stand-in (the vLLM bridge
 * issue swaps in a real engine); the scheduler splits inputs into batches of bsz = 2, sends each batch
 * to the engine and flattens the results.
 */
import { actor, get, type ActorHandle } from '@tsray/core';

export class EchoEngine {
  generate(prompts: string[], _samplingParams?: unknown): string[] {
    return prompts.map((p) => `${p} -> echo`);
  }
}
export const RemoteEchoEngine = actor(EchoEngine);

export class VllmScheduler {
  private readonly bsz = 2;
  constructor(private readonly model: ActorHandle<EchoEngine>) {}

  async schedule(input: string[]): Promise<string[]> {
    const batches = [];
    for (let i = 0; i < input.length; i += this.bsz) batches.push(this.model.generate.remote(input.slice(i, i + this.bsz), null));
    return (await get(batches)).flat();
  }
}
export const RemoteVllmScheduler = actor(VllmScheduler);
