/**
 * Placement groups: bundles of resources reserved together (PACK, SPREAD, STRICT_PACK,
 * STRICT_SPREAD). Tasks and actors go into them by their `schedulingStrategy` (scheduling-strategy.ts).
 * @module
 */
import { validateBundles, validateStrategy, type PlacementStrategy } from '@tsray/placement';
import { ValidationError } from './errors.js';
import { newId } from './ids.js';
import { ObjectRef } from './object-ref.js';
import { currentRuntime } from './remote-function.js';

/** Options of `placementGroup`. */
export interface PlacementGroupOptions {
  /** How bundles are spread over nodes. Default 'PACK' (as Ray). */
  strategy?: PlacementStrategy;
  /** A name for the state API. */
  name?: string;
  /** 'detached': the group outlives its creator. */
  lifetime?: 'detached';
}

/** Where a created group's bundles are: node and GPU ids, in bundle order (stable). */
export interface PlacementGroupInfo {
  id: string;
  strategy: PlacementStrategy;
  bundles: { nodeId: string; gpuIds: string[]; resources: Record<string, number> }[];
}

/**
 * A placement group. Pass it in a scheduling strategy:
 * `fn.options({ schedulingStrategy: { type: 'PLACEMENT_GROUP', placementGroup: pg, bundleIndex: 0 } })`.
 */
export class PlacementGroup {
  /** Made by tsray, not by users (kept in the typings so `new` takes the real arguments). */
  constructor(
    readonly id: string,
    readonly bundles: Record<string, number>[],
    readonly strategy: PlacementStrategy,
    readonly name: string,
  ) {}

  /** A ref that resolves (to the bundles' node and GPU ids) once the group is reserved. */
  ready(): ObjectRef<PlacementGroupInfo> {
    return new ObjectRef<PlacementGroupInfo>(`${this.id}.ready`);
  }

  /** True once the group is reserved; false if `timeoutSeconds` passed first. */
  async wait(timeoutSeconds = 30): Promise<boolean> {
    const rt = currentRuntime('PlacementGroup.wait()');
    const ref = this.ready();
    const ready = await rt.wait([ref.id], 1, timeoutSeconds * 1000);
    ref.release();
    return ready.length === 1;
  }
}

/**
 * Reserve bundles of resources atomically (all or nothing). Returns at once; `pg.ready()` resolves
 * when the group is placed. A group that cannot be placed now waits for resources; one that no node
 * can ever hold stays pending and is named in a warning.
 *
 * @example
 * const pg = placementGroup([{ GPU: 1 }, { GPU: 1 }], { strategy: 'STRICT_PACK' });
 * await get(pg.ready());
 */
export function placementGroup(bundles: Record<string, number>[], options: PlacementGroupOptions = {}): PlacementGroup {
  const where = 'placementGroup()';
  for (const k of Object.keys(options)) {
    if (!['strategy', 'name', 'lifetime'].includes(k)) throw new ValidationError(k, `${where}: unknown option "${k}"`);
  }
  let strategy: PlacementStrategy;
  try {
    validateBundles(bundles);
    strategy = validateStrategy(options.strategy ?? 'PACK');
  } catch (e) {
    throw new ValidationError((e as { option?: string }).option ?? 'bundles', `${where}: ${(e as Error).message}`);
  }
  if (options.lifetime !== undefined && options.lifetime !== 'detached')
    throw new ValidationError('lifetime', `${where}: lifetime must be 'detached' or left out`);
  const rt = currentRuntime(where);
  const pg = new PlacementGroup(
    newId('pg'),
    bundles.map((b) => ({ ...b })),
    strategy,
    options.name ?? '',
  );
  rt.createPlacementGroup(pg.id, pg.bundles, strategy, pg.name, options.lifetime === 'detached');
  return pg;
}

/**
 * Remove a placement group: the tasks and actors in it are stopped and its resources freed. Removing
 * a group twice is an error.
 */
export function removePlacementGroup(pg: PlacementGroup | { id: string }): void {
  if (!pg || typeof pg.id !== 'string') throw new TypeError('removePlacementGroup() expects a PlacementGroup');
  currentRuntime('removePlacementGroup()').removePlacementGroup(pg.id);
}
