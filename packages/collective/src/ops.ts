/**
 * The collectives a rank calls: `allreduce`, `allgather`, `reducescatter`, `broadcast`, `barrier`. Each
 * must be called by every rank of the group, in the same order (as Ray's and torch's).
 *
 * Data path: payloads of 64 KiB and more go through the object store. On one node every chunk is a
 * shared-memory object the other ranks map zero-copy: allreduce = reduce-scatter (rank r puts chunk j of
 * its array for j != r, then reduces chunk r of every rank, in rank order) + all-gather (rank r puts its
 * reduced chunk, every rank copies the others' into place): 2 rounds, each rank writes S and reads
 * 2(N-1)/N·S bytes (a TypeScript rank on one node shares its whole array as one object instead and
 * reduces in one pass: `allreduceShared`). When the group spans nodes, the chunks travel as values in the coordinator calls
 * and their replies (which cross nodes; a ref nested in a reply would not be fetchable on another
 * node): a star through the coordinator's node. Smaller payloads travel inline in the coordinator calls, and allreduce is reduced by the
 * coordinator (one round).
 * @module
 */
import { get, ObjectRef, put, putAsync } from '@tsray/core';
import { allocate, asArray, chunkBounds, DTYPES, dtypeOf, finishMean, REDUCE_OPS, reduceAll, reduceInto, type NumericArray, type ReduceOp } from './dtypes.js';
import { CollectiveUsageError } from './errors.js';
import type { RoundRequest } from './coordinator.js';
import { rankState, round } from './group.js';
import { allreduceShm, barrierShm, type ShmRank } from './shm-allreduce.js';

/**
 * What a rank sends for one chunk: a ref to a shared-memory object when the whole group is on one node,
 * else the chunk itself (a copy of just those elements: a view would carry its whole buffer).
 */
function share(sameNode: boolean, a: NumericArray): ObjectRef<NumericArray> | NumericArray {
  return sameNode ? put(a) : a.slice();
}

/** The chunks behind what `share` sent (refs are fetched, values are already here). */
async function fetchAll(items: unknown[]): Promise<unknown[]> {
  const refs = items.filter((x): x is ObjectRef<unknown> => x instanceof ObjectRef);
  if (refs.length === 0) return items;
  const values = await get(refs);
  let k = 0;
  return items.map((x) => (x instanceof ObjectRef ? values[k++] : x));
}

function releaseRefs(items: unknown[]): void {
  for (const x of items) if (x instanceof ObjectRef) x.release();
}

/** Payloads below this many bytes travel inline and are reduced by the coordinator. */
export const SMALL_BYTES = 64 * 1024;

/** Options of every collective. */
export interface CollectiveOptions {
  /** Group name (default `'default'`). */
  group?: string;
  /**
   * Fail with `CollectiveTimeoutError` when some rank has not called the collective within this time.
   * Also bounds this rank's wait for the group to exist at its first collective (default
   * `GROUP_WAIT_MS`, 30 s), after which it fails with `CollectiveGroupNotFoundError`.
   */
  timeoutMs?: number;
}

/** Options of the reducing collectives. */
export interface ReduceOptions extends CollectiveOptions {
  /** `'sum'` (default), `'mean'`, `'min'`, `'max'`. */
  op?: ReduceOp;
}

function check(group: string, what: string, a: unknown, op?: ReduceOp) {
  const dtype = dtypeOf(a);
  if (!dtype)
    throw new CollectiveUsageError(group, `${what}: expected a TypedArray or Buffer of ${DTYPES.join('/')}, got ${Object.prototype.toString.call(a)}`);
  if (op !== undefined && !REDUCE_OPS.includes(op))
    throw new CollectiveUsageError(group, `${what}: op must be one of ${REDUCE_OPS.join(', ')}, got ${String(op)}`);
  return dtype;
}

/** Copy `src` into `dst` (as raw bytes: `dst` may be a Buffer view of the same memory as `src`'s dtype). */
function copyInto(dst: NumericArray, at: number, src: NumericArray): void {
  dst.set(src, at);
}

/**
 * Reduce `array` over the group in place: every rank ends with the element-wise `op` of every rank's
 * array (in rank order, so the result is bitwise the same on every rank). Resolves to the same array.
 */
export async function allreduce<A extends NumericArray>(array: A, options: ReduceOptions = {}): Promise<A> {
  const group = options.group ?? 'default';
  const op = options.op ?? 'sum';
  const dtype = check(group, 'allreduce()', array, op);
  const st = await rankState(group, options.timeoutMs);
  const { rank, worldSize } = st.joined;
  const signature = `allreduce:${op}:${dtype}:${array.length}`;
  if (st.segment) return allreduceShm(st as ShmRank, array, op, dtype, signature, options.timeoutMs);
  const base = { signature, op, dtype, timeoutMs: options.timeoutMs };
  if (array.byteLength < SMALL_BYTES || worldSize === 1) {
    const res = await round<unknown>(st, { ...base, mode: 'reduce', item: array });
    copyInto(array, 0, asArray(res, dtype));
    return array;
  }
  const bounds = chunkBounds(array.length, worldSize);
  const mine = bounds[rank]!;
  const { sameNode } = st.joined;
  if (sameNode) return allreduceShared(st, array, bounds, base);
  const out = bounds.map(([s, e], j) => (j === rank ? null : share(sameNode, array.subarray(s, e))));
  const inItems = await round<unknown[]>(st, { ...base, mode: 'scatter', item: out });
  releaseRefs(out);
  const values = await fetchAll(inItems);
  const acc = allocate(dtype, mine[1] - mine[0]);
  for (let j = 0; j < worldSize; j++) {
    const v = j === rank ? array.subarray(mine[0], mine[1]) : asArray(values[j], dtype);
    if (j === 0) acc.set(v);
    else reduceInto(acc, v, op);
  }
  releaseRefs(inItems);
  if (op === 'mean') finishMean(acc, worldSize);
  const reduced = share(sameNode, acc);
  const all = await round<unknown[]>(st, { ...base, signature: `${signature}:gather`, mode: 'gather', item: reduced });
  releaseRefs([reduced]);
  const gathered = await fetchAll(all.map((x, j) => (j === rank ? null : x)));
  for (let j = 0; j < worldSize; j++) copyInto(array, bounds[j]![0], j === rank ? acc : asArray(gathered[j], dtype));
  releaseRefs(all);
  return array;
}

/**
 * At most this many bytes, an allreduce on one node of TypeScript ranks is one round: each rank reduces
 * the whole array from the others' shared-memory copies (below ~16 MiB that costs less CPU than a second
 * coordinator round and its put/get on a loaded machine).
 */
export const WHOLE_REDUCE_BYTES = 16 * 1024 * 1024;

/**
 * allreduce when every rank is on this node: one `put` of the whole array (one copy into shared memory,
 * one object), a gather round of the refs, then rank r reduces chunk r of every rank's object (zero-copy
 * views into shared memory) in one pass straight into its own array, puts that chunk, and after a second
 * gather round copies the other ranks' reduced chunks into place. Per rank: S bytes written into shared
 * memory and S/N for the reduced chunk (was 2(N-1)/N·S in N chunk objects), one reduction pass, and no
 * scratch buffer.
 */
async function allreduceShared<A extends NumericArray>(
  st: Parameters<typeof round>[0],
  array: A,
  bounds: [number, number][],
  base: Omit<RoundRequest, 'epoch' | 'seq' | 'rank' | 'mode' | 'item'>,
): Promise<A> {
  const { rank, worldSize } = st.joined;
  const dtype = base.dtype!;
  const op = base.op!;
  const [s, e] = bounds[rank]!;
  const whole = await putAsync(array);
  // A scatter round (as Python ranks do it, so groups can mix): every destination gets the same ref to the
  // whole array; a peer's item is then its whole array (TypeScript) or just our chunk (Python).
  const refs = await round<unknown[]>(st, { ...base, mode: 'scatter', item: bounds.map((_, j) => (j === rank ? null : whole)) });
  const peers = (await fetchAll(refs)).map((v, j) => (j === rank ? array : asArray(v, dtype)));
  // Every rank sees the same items, so every rank takes the same branch.
  if (array.byteLength <= WHOLE_REDUCE_BYTES && peers.every((a) => a.length === array.length)) {
    // Small enough: every rank reduces the whole array itself (the same left fold, so bitwise the same on
    // every rank), saving the second round, which costs more than the redundant work here.
    reduceAll(array, peers, op);
    if (op === 'mean') finishMean(array, worldSize);
    releaseRefs(refs);
    whole.release();
    return array;
  }
  const mine = array.subarray(s, e);
  const inputs = peers.map((a, j) => (j === rank ? mine : a.length === array.length ? a.subarray(s, e) : a));
  reduceAll(mine, inputs, op);
  if (op === 'mean') finishMean(mine, worldSize);
  releaseRefs(refs);
  whole.release();
  const reduced = await putAsync(mine);
  const all = await round<unknown[]>(st, { ...base, signature: `${base.signature}:gather`, mode: 'gather', item: reduced });
  reduced.release();
  const gathered = await fetchAll(all.map((x, j) => (j === rank ? null : x)));
  for (let j = 0; j < worldSize; j++) if (j !== rank) copyInto(array, bounds[j]![0], asArray(gathered[j], dtype));
  releaseRefs(all);
  return array;
}

/** Every rank's array, in rank order (arrays of different lengths are allowed). The results are copies. */
export async function allgather<A extends NumericArray>(array: A, options: CollectiveOptions = {}): Promise<A[]> {
  const group = options.group ?? 'default';
  const dtype = check(group, 'allgather()', array);
  const st = await rankState(group, options.timeoutMs);
  const { rank } = st.joined;
  const base = { signature: `allgather:${dtype}`, timeoutMs: options.timeoutMs, mode: 'gather' as const };
  if (array.byteLength < SMALL_BYTES) {
    const items = await round<unknown[]>(st, { ...base, item: array });
    return items.map((it) => asArray(it, dtype).slice() as A);
  }
  const mine = share(st.joined.sameNode, array);
  const items = await round<unknown[]>(st, { ...base, item: mine });
  releaseRefs([mine]);
  const values = await fetchAll(items.map((x, j) => (j === rank ? null : x)));
  const out = items.map((_, j) => (j === rank ? array.slice() : asArray(values[j], dtype).slice()) as A);
  releaseRefs(items);
  return out;
}

/**
 * Reduce `array` over the group and give rank r chunk r of the result: the array is split in
 * `worldSize` near-equal chunks, the first `length % worldSize` one element longer (`chunkBounds`).
 */
export async function reducescatter<A extends NumericArray>(array: A, options: ReduceOptions = {}): Promise<A> {
  const group = options.group ?? 'default';
  const op = options.op ?? 'sum';
  const dtype = check(group, 'reducescatter()', array, op);
  const st = await rankState(group, options.timeoutMs);
  const { rank, worldSize } = st.joined;
  const bounds = chunkBounds(array.length, worldSize);
  const [s, e] = bounds[rank]!;
  const base = { signature: `reducescatter:${op}:${dtype}:${array.length}`, op, dtype, timeoutMs: options.timeoutMs };
  if (array.byteLength < SMALL_BYTES) {
    const res = await round<unknown>(st, { ...base, mode: 'reduce', item: array });
    return asArray(res, dtype).slice(s, e) as A;
  }
  const out = bounds.map(([a, b], j) => (j === rank ? null : share(st.joined.sameNode, array.subarray(a, b))));
  const inItems = await round<unknown[]>(st, { ...base, mode: 'scatter', item: out });
  releaseRefs(out);
  const values = await fetchAll(inItems);
  const acc = allocate(dtype, e - s);
  for (let j = 0; j < worldSize; j++) {
    const v = j === rank ? array.subarray(s, e) : asArray(values[j], dtype);
    if (j === 0) acc.set(v);
    else reduceInto(acc, v, op);
  }
  releaseRefs(inItems);
  if (op === 'mean') finishMean(acc, worldSize);
  return acc as A;
}

/** Options of {@link broadcast}. */
export interface BroadcastOptions extends CollectiveOptions {
  /** The rank whose array every rank receives (default 0). */
  srcRank?: number;
}

/** Copy rank `srcRank`'s array into every rank's `array` (same dtype and length on every rank). */
export async function broadcast<A extends NumericArray>(array: A, options: BroadcastOptions = {}): Promise<A> {
  const group = options.group ?? 'default';
  const src = options.srcRank ?? 0;
  const dtype = check(group, 'broadcast()', array);
  const st = await rankState(group, options.timeoutMs);
  const { rank, worldSize } = st.joined;
  if (!Number.isInteger(src) || src < 0 || src >= worldSize) throw new CollectiveUsageError(group, `broadcast(): srcRank ${src} is not in 0..${worldSize - 1}`);
  const base = { signature: `broadcast:${src}:${dtype}:${array.length}`, timeoutMs: options.timeoutMs, mode: 'gather' as const };
  const small = array.byteLength < SMALL_BYTES;
  const item = rank !== src ? null : small ? array : share(st.joined.sameNode, array);
  const items = await round<unknown[]>(st, { ...base, item });
  releaseRefs([item]);
  if (rank === src) return array;
  const [v] = await fetchAll([items[src]]);
  copyInto(array, 0, asArray(v, dtype));
  releaseRefs(items);
  return array;
}

/** Wait until every rank of the group has called `barrier`. */
export async function barrier(options: CollectiveOptions = {}): Promise<void> {
  const group = options.group ?? 'default';
  const st = await rankState(group, options.timeoutMs);
  // The segment holds this node's ranks: a barrier of a group over several nodes goes to the coordinator.
  if (st.segment && st.segment.worldSize === st.joined.worldSize) return barrierShm(st as ShmRank, options.timeoutMs);
  await round<unknown>(st, { signature: 'barrier', mode: 'gather', item: null, timeoutMs: options.timeoutMs });
}

/** This process's rank in `group` (joins it first if needed). */
export async function getRank(group = 'default'): Promise<number> {
  return (await rankState(group)).joined.rank;
}

/** The world size of `group` (joins it first if needed). */
export async function getWorldSize(group = 'default'): Promise<number> {
  return (await rankState(group)).joined.worldSize;
}

/**
 * How this rank's allreduce and barrier of `group` move data (joins first if needed): `'shm'`, the
 * group's shared-memory segment (every rank a TypeScript process on this node, the addon loaded), or
 * `'object-store'` (otherwise: Python ranks, several nodes).
 */
export async function groupTransport(group = 'default'): Promise<'shm' | 'object-store'> {
  return (await rankState(group)).segment ? 'shm' : 'object-store';
}

/**
 * This rank's lane in the cross-node rings of `group` (joins first if needed): `{ lane, lanes, nodes }`
 * when the group spans nodes and this rank carries part of the nodes' traffic; undefined on one node,
 * for object-store groups, and for a rank past the last lane (its node has more ranks than the smallest
 * node). Lane l is the l-th rank of every node; it exchanges part l of each allreduce with the same lane
 * of the other nodes.
 */
export async function ringLane(group = 'default'): Promise<{ lane: number; lanes: number; nodes: number } | undefined> {
  const ring = (await rankState(group)).ring;
  return ring && { lane: ring.lane, lanes: ring.lanes, nodes: ring.count };
}
