/**
 * State API (the part this release has): cluster resources, what is free, and pending demand.
 * @module
 */
import { RuntimeStateError } from './errors.js';
import { state } from './state.js';

interface StateSource {
  clusterResources(): Record<string, number>;
  availableResources(): Record<string, number>;
  pendingDemand(): PendingDemand[];
}

/** Work waiting for resources: a task or actor shape, how many, and why. */
export interface PendingDemand {
  kind: 'task' | 'actor' | 'placement_group';
  name: string;
  resources: Record<string, number> | Record<string, number>[];
  count: number;
  /** True when no node can ever provide it (the missing resources are named). */
  infeasible: boolean;
  missing: string[];
}

function source(what: string): StateSource {
  const rt = state().runtime as unknown as Partial<StateSource> | undefined;
  if (!rt || typeof rt.clusterResources !== 'function') {
    throw new RuntimeStateError(`${what} is available in the driver that runs the local cluster (call init() first)`);
  }
  return rt as StateSource;
}

/** Total resources of the cluster (as Ray's `cluster_resources()`). */
export function clusterResources(): Record<string, number> {
  return source('clusterResources()').clusterResources();
}

/** Resources free now (as Ray's `available_resources()`). */
export function availableResources(): Record<string, number> {
  return source('availableResources()').availableResources();
}

/** Tasks, actors and placement groups waiting for resources, infeasible ones named. */
export function pendingDemand(): PendingDemand[] {
  return source('pendingDemand()').pendingDemand();
}
