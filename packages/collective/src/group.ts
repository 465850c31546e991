/**
 * Groups: creating one from the driver (`createGroup(actors)`), joining one from inside a rank
 * (`initCollectiveGroup(worldSize, rank, name)`), and this process's state of each group it is a rank
 * of. A rank joins lazily, at its first collective; after a failure it joins again at its next one, so a
 * group re-forms by itself once every rank (restarted ones included) calls a collective again.
 * @module
 */
import { ActorDiedError, actorInfo, get, getActor, getRuntimeContext, kill, nodes, TsrayError, ValidationError, type ActorHandle } from '@tsray/core';
import { RemoteCollectiveCoordinator, type CollectiveCoordinator, type Joined, type Reply, type RoundRequest } from './coordinator.js';
import { CollectiveError, CollectiveGroupNotFoundError, CollectiveUsageError, errorFromFailure, type FailureInfo } from './errors.js';
import { NodeRing, type RingEndpoint } from './node-ring.js';
import { shmAddon, ShmSegment, type BarrierContext } from './shm-segment.js';

/** The namespace of the coordinator actors (so every job and language finds them by group name). */
export const COLLECTIVE_NAMESPACE = 'tsray-collective';

/** The coordinator actor's name for group `name`. */
export function coordinatorName(name: string): string {
  return `collective:${name}`;
}

/**
 * How long a rank's first collective waits for its group to appear (when the call gives no `timeoutMs`):
 * a rank may run before the group's coordinator is visible from its node (on a cluster, the name reaches
 * the GCS directory asynchronously), so "not found" is retried until then.
 */
export const GROUP_WAIT_MS = 30_000;

/**
 * Hooks for tests (not part of the API): `onGroupMissing` runs each time a rank looks its group up and
 * does not find it yet, so a test can create the group only after a rank has missed it.
 */
export const collectiveTestHooks: { onGroupMissing?: (group: string) => void } = {};

/**
 * The coordinators this process created, until `destroy()` / `destroyGroup()`: an actor handle is a
 * reference, and a non-detached actor stops once no handle is left, so without this a caller that drops
 * `createGroup`'s result would let the group's coordinator be collected (and killed) at the next GC,
 * before the ranks have looked it up.
 */
const created = new Map<string, ActorHandle<CollectiveCoordinator>>();

/** Options of {@link createGroup}. */
export interface CreateGroupOptions {
  /** Group name (default `'default'`); ranks pass it as `group` to each collective. */
  name?: string;
}

/** A group created by {@link createGroup}: its name, size, and `destroy()`. */
export interface CollectiveGroup {
  readonly name: string;
  readonly worldSize: number;
  /** Stop the group's coordinator: collectives waiting in it fail on every rank. */
  destroy(): void;
}

/**
 * Create a collective group from the driver (Ray's `create_collective_group`): `actors` are the ranks in
 * rank order (TypeScript or Python actors, mixed), or a number: the world size, each rank then says its
 * rank with `initCollectiveGroup`. Resolves once the group's coordinator runs and every listed actor is alive
 * (waits at most 60 s for slow constructors; the coordinator notes each rank's process then).
 */
export async function createGroup(actors: readonly ActorHandle<unknown>[] | number, options: CreateGroupOptions = {}): Promise<CollectiveGroup> {
  const name = options.name ?? 'default';
  if (typeof name !== 'string' || name === '') throw new ValidationError('name', 'createGroup(): name must be a non-empty string');
  const ids = typeof actors === 'number' ? [] : actors.map((a) => actorInfo(a).actorId);
  const worldSize = typeof actors === 'number' ? actors : ids.length;
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new ValidationError('actors', 'createGroup(): give at least one actor, or a world size >= 1');
  if (new Set(ids).size !== ids.length) throw new ValidationError('actors', 'createGroup(): an actor appears twice');
  const coord = RemoteCollectiveCoordinator.options({
    name: coordinatorName(name),
    namespace: COLLECTIVE_NAMESPACE,
    maxConcurrency: 10_000,
    numCpus: 0,
  }).remote(name, worldSize, ids);
  created.set(name, coord);
  await get(coord.ready.remote());
  return {
    name,
    worldSize,
    destroy: () => {
      if (created.get(name) === coord) created.delete(name);
      kill(coord);
    },
  };
}

/** Stop group `name`'s coordinator, wherever it was created (no-op when there is none). */
export async function destroyGroup(name = 'default'): Promise<void> {
  local.delete(name);
  created.delete(name);
  try {
    kill(await getActor(coordinatorName(name), { namespace: COLLECTIVE_NAMESPACE }));
  } catch (e) {
    if (!(TsrayError.isInstance(e) && e.name === 'ActorNotFoundError')) throw e;
  }
}

/** This process's view of a group it is a rank of. */
export interface RankState {
  readonly name: string;
  coord: ActorHandle<CollectiveCoordinator>;
  /** The rank given to initCollectiveGroup (undefined: found from this actor's place in createGroup's list). */
  readonly askedRank?: number;
  joined?: Joined;
  seq: number;
  /** The epoch's shared-memory segment, mapped (when `joined.shm`). */
  segment?: ShmSegment;
  /** Ops run in the segment this epoch (their signatures alternate between two header slots). */
  shmSeq: number;
  /**
   * In a group over several nodes, on a rank that carries a lane: its end of the lane's ring, its index
   * in it, the ring's size (the nodes), its lane and the number of lanes (see {@link formRing}).
   */
  ring?: { ring: NodeRing; index: number; count: number; lane: number; lanes: number };
}

const local = new Map<string, RankState>();

/**
 * Join group `name` as `rank` of `worldSize` from inside a rank (Ray's `init_collective_group`). The
 * first rank to call it creates the group's coordinator; the others find it. Collectives then name the
 * group with `{ group: name }`.
 */
export async function initCollectiveGroup(worldSize: number, rank: number, name = 'default'): Promise<void> {
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new ValidationError('worldSize', 'initCollectiveGroup(): worldSize must be an integer >= 1');
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new ValidationError('rank', `initCollectiveGroup(): rank must be in 0..${worldSize - 1}`);
  const coord = RemoteCollectiveCoordinator.options({
    name: coordinatorName(name),
    namespace: COLLECTIVE_NAMESPACE,
    getIfExists: true,
    maxConcurrency: 10_000,
    numCpus: 0,
  }).remote(name, worldSize, []);
  const size = await get(coord.ready.remote());
  if (size !== worldSize) throw new CollectiveUsageError(name, `the group has world size ${size}, this rank said ${worldSize}`);
  local.set(name, { name, coord, askedRank: rank, seq: 0, shmSeq: 0 });
}

async function coordinatorCall<T>(st: RankState, call: () => Promise<Reply<T>>): Promise<T> {
  let reply: Reply<T>;
  try {
    reply = await call();
  } catch (e) {
    local.delete(st.name);
    if (e instanceof ActorDiedError) throw new CollectiveError(st.name, `its coordinator is gone (${e.message}); create the group again`);
    throw e;
  }
  if (!reply.ok) {
    leaveSegment(st);
    st.joined = undefined; // join again at the next collective (the group re-forms)
    throw errorFromFailure(st.name, reply.failure);
  }
  return reply.value;
}

/**
 * The coordinator of group `name`, waiting up to `waitMs` for it to exist: a rank's first collective may
 * run before the group is visible here. Other lookup errors are not retried.
 */
async function findCoordinator(name: string, waitMs: number): Promise<ActorHandle<CollectiveCoordinator>> {
  const deadline = Date.now() + waitMs;
  for (let pause = 10; ; pause = Math.min(pause * 2, 250)) {
    try {
      return await getActor<CollectiveCoordinator>(coordinatorName(name), { namespace: COLLECTIVE_NAMESPACE });
    } catch (e) {
      if (!(TsrayError.isInstance(e) && e.name === 'ActorNotFoundError')) throw e;
    }
    collectiveTestHooks.onGroupMissing?.(name);
    const left = deadline - Date.now();
    if (left <= 0) throw new CollectiveGroupNotFoundError(name, waitMs);
    await new Promise((r) => setTimeout(r, Math.min(pause, left)));
  }
}

/**
 * This process's state of group `name`, joined (waits for every rank the first time and after a
 * failure). The first time, waits up to `waitMs` (default {@link GROUP_WAIT_MS}) for the group to exist.
 */
export async function rankState(name: string, waitMs = GROUP_WAIT_MS): Promise<RankState & { joined: NonNullable<RankState['joined']> }> {
  let st = local.get(name);
  if (!st) {
    const coord = await findCoordinator(name, waitMs);
    st = local.get(name) ?? { name, coord, seq: 0, shmSeq: 0 };
    local.set(name, st);
  }
  if (!st.joined) {
    const ctx = getRuntimeContext();
    const s = st;
    const who = { rank: st.askedRank, actorId: ctx.actorId, pid: ctx.pid, nodeId: ctx.nodeId, shm: shmAddon() !== undefined };
    leaveSegment(st);
    st.joined = await coordinatorCall(st, () => get(s.coord.join.remote(who)));
    st.seq = 0;
    if (st.joined.shm) await attachSegment(st as RankState & { joined: Joined }, st.joined.shm, waitMs);
  }
  return st as RankState & { joined: NonNullable<RankState['joined']> };
}

/** One round with the coordinator: the next sequence number of this group, this rank, the current epoch. */
export async function round<T>(st: RankState & { joined: NonNullable<RankState['joined']> }, req: Omit<RoundRequest, 'epoch' | 'seq' | 'rank'>): Promise<T> {
  const full: RoundRequest = { ...req, epoch: st.joined.epoch, seq: st.seq++, rank: st.joined.rank };
  return coordinatorCall(st, () => get(st.coord.exchange.remote(full))) as Promise<T>;
}

/** Stop using the epoch's segment (after a failure, or before joining a new epoch). */
export function leaveSegment(st: RankState): void {
  st.segment?.close();
  st.segment = undefined;
  st.ring?.ring.close();
  st.ring = undefined;
}

/**
 * A collective in the segment failed (the segment is aborted for every rank): forget the epoch, so the
 * next collective joins the coordinator again and the group re-forms with a new segment.
 */
export function segmentFailed(st: RankState): void {
  leaveSegment(st);
  st.joined = undefined;
}

/** What a barrier in `st`'s segment needs: the deadline of `timeoutMs` and the coordinator's verdict. */
export function barrierContext(st: RankState & { joined: Joined }, timeoutMs?: number): BarrierContext {
  const { epoch } = st.joined;
  return {
    group: st.name,
    timeoutMs,
    deadline: timeoutMs ? Date.now() + timeoutMs : Number.POSITIVE_INFINITY,
    health: async (): Promise<FailureInfo | undefined> => {
      const reply = await get(st.coord.health.remote(epoch));
      return reply.ok ? undefined : reply.failure;
    },
  };
}

/**
 * Map the epoch's segment of this node and wait until every rank on it has (then the node's first rank
 * unlinks the file: the mappings stay, and nothing is left in /dev/shm). A rank that cannot map it fails the group at the coordinator,
 * so the others, waiting here, learn it at their next health check.
 */
async function attachSegment(st: RankState & { joined: Joined }, path: string, waitMs: number): Promise<void> {
  const { rank, worldSize, epoch } = st.joined;
  let seg: ShmSegment;
  try {
    seg = ShmSegment.open(st.name, path, st.joined.shmRanks ?? Array.from({ length: worldSize }, (_, r) => r), rank);
  } catch (e) {
    await get(st.coord.abort.remote(epoch, { kind: 'usage', message: `rank ${rank} could not map the shared-memory segment: ${(e as Error).message}` }));
    segmentFailed(st);
    throw e;
  }
  st.segment = seg;
  st.shmSeq = 0;
  try {
    await seg.barrier(barrierContext(st, waitMs));
  } catch (e) {
    segmentFailed(st);
    throw e;
  }
  if (seg.rank === 0) seg.unlink();
  if (seg.worldSize < worldSize) await formRing(st);
}

/** The host of this rank's node (its tcp address), where a rank's ring socket listens. */
async function nodeHost(): Promise<string> {
  const me = getRuntimeContext().nodeId;
  const address = (await nodes()).find((n) => n.nodeId === me)?.address ?? '';
  return /^(?:tcp:\/\/)?([^:/]+):\d+$/.exec(address)?.[1] ?? '127.0.0.1';
}

/** What each rank publishes in the ring round: its ring endpoint and nonce, its node and its lane. */
interface LaneEndpoint extends RingEndpoint {
  node: string;
  lane: number;
}

/**
 * The rings of a group over several nodes, one per lane: lane l is the l-th rank of every node's segment,
 * and lanes = the fewest ranks any node has. Lane l allreduces part l of the nodes' sums
 * (`chunkBounds(n, lanes)[l]`) with lane l of the other nodes, so the cross-node traffic and its sealing
 * are spread over `lanes` processes per node instead of one leader. Every rank listens; the endpoints
 * travel in one gather round of every rank; each lane's ranks (in rank order) connect to the next one of
 * their lane, and ranks past the last lane close their socket.
 */
async function formRing(st: RankState & { joined: Joined }): Promise<void> {
  const lane = st.segment!.rank;
  let ring: NodeRing | undefined;
  try {
    ring = await NodeRing.listen(await nodeHost());
    const item: LaneEndpoint = { ...ring.self, node: getRuntimeContext().nodeId, lane };
    const all = await round<(LaneEndpoint | null)[]>(st, { signature: 'node-ring', mode: 'gather', item });
    const valid = all.filter((x): x is LaneEndpoint => typeof x?.endpoint === 'string' && typeof x.nonce === 'string' && Number.isInteger(x.lane));
    const perNode = new Map<string, number>();
    for (const x of valid) perNode.set(x.node, (perNode.get(x.node) ?? 0) + 1);
    const lanes = Math.min(...perNode.values());
    if (lane >= lanes) {
      ring.close();
      return;
    }
    const peers = valid.filter((x) => x.lane === lane);
    const index = peers.findIndex((x) => x.endpoint === ring!.endpoint);
    const count = peers.length;
    ring.connect(peers[(index + 1) % count]!, peers[(index + count - 1) % count]!, st.name);
    st.ring = { ring, index, count, lane, lanes };
  } catch (e) {
    ring?.close();
    segmentFailed(st);
    throw e;
  }
}
