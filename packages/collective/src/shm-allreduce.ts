/**
 * Allreduce and barrier inside a group's shared-memory segment (`shm-segment.ts`), for groups whose
 * ranks are all TypeScript processes on one node: no message through the node or the coordinator per op.
 *
 * Allreduce of S bytes over N ranks, data layout after the header: N input slots of S bytes (rounded up
 * to 64) and one result slot. Rank r copies its array into slot r; barrier; rank r reduces chunk r
 * (`chunkBounds`) of every slot, in rank order, into the result slot (reduce-scatter, in place in shared
 * memory); barrier; every rank copies the whole result back into its array (all-gather). Per rank that
 * is S bytes written in, S read and S/N written by the reduction, S read out, against the object-store
 * path's puts, gets and two coordinator rounds. Two barriers make reuse safe: a rank writes its slot for
 * the next op only after every rank has finished reading the slots (barrier 2), and the result slot is
 * written again only after every rank has arrived at the next op's first barrier, so has copied it out.
 * @module
 */
import { chunkBounds, copyInto, finishMean, reduceAll, viewOf, type Dtype, type NumericArray, type ReduceOp } from './dtypes.js';
import { CollectiveRankDiedError, CollectiveTimeoutError, CollectiveUsageError, type FailureInfo } from './errors.js';
import { barrierContext, segmentFailed, type RankState } from './group.js';
import type { Joined } from './coordinator.js';
import { useThreads } from './native.js';
import { SHM_HEADER_BYTES, signatureHash, type ShmSegment } from './shm-segment.js';

/** A rank's state of a group that has a mapped segment. */
export type ShmRank = RankState & { joined: Joined; segment: ShmSegment };

/** Run `body` in the segment; any failure abandons the segment (the group re-forms at the next call). */
async function inSegment<T>(st: ShmRank, signature: string, body: (seq: number) => Promise<T>): Promise<T> {
  const seg = st.segment;
  const seq = st.shmSeq++;
  seg.setSignature(seq, signatureHash(signature));
  try {
    return await body(seq);
  } catch (e) {
    seg.fail(failureOf(e)); // the first failure wins: a barrier's own abort stays
    segmentFailed(st);
    throw e;
  }
}

/** The failure to abort the segment with, so the node's other ranks throw the same kind of error. */
function failureOf(e: unknown): FailureInfo {
  if (e instanceof CollectiveRankDiedError) return { kind: 'rank_died', rank: e.rank, message: e.detail };
  if (e instanceof CollectiveTimeoutError) return { kind: 'timeout', message: e.message, missing: [...e.missingRanks] };
  return { kind: 'usage', message: (e as Error).message };
}

/** After the op's first barrier: every rank called the same op (else every rank throws the same error). */
function checkSignatures(st: ShmRank, seq: number, signature: string): void {
  if (!st.segment.signaturesAgree(seq)) {
    throw new CollectiveUsageError(st.name, `ranks disagree on a collective: this rank (${st.joined.rank}) called ${signature}, another rank something else`);
  }
}

const align64 = (n: number) => Math.ceil(n / 64) * 64;

/**
 * `array` reduced with `op` over the group, in place, through the segment (see the module comment).
 * When the group spans nodes, each node's segment holds its ranks' sum after the local reduce-scatter;
 * lane l (the l-th rank of each node, `formRing` in group.ts) allreduces part l of that sum with lane l of
 * the other nodes over its ring (`node-ring.ts`), in place in the segment, and a last barrier releases
 * each node's ranks to copy the total out. When a node has exactly as many ranks as there are lanes, a
 * rank's part is its own chunk of the local reduce, so it starts its ring at once (no barrier between the
 * local reduce and the ring) and reduces the chunk frame by frame as the ring first needs it: the local
 * reduce overlaps the ring's traffic, and that rank copies into its slot all but its own part (which only
 * it reads, from its array).
 */
export async function allreduceShm<A extends NumericArray>(
  st: ShmRank,
  array: A,
  op: ReduceOp,
  dtype: Dtype,
  signature: string,
  timeoutMs?: number,
): Promise<A> {
  const { worldSize } = st.joined;
  const seg = st.segment;
  const local = seg.worldSize;
  const spans = local < worldSize;
  // Across nodes a mean is a sum until the lanes have the total.
  const localOp: ReduceOp = spans && op === 'mean' ? 'sum' : op;
  useThreads(local);
  return inSegment(st, signature, async (seq) => {
    const slot = align64(array.byteLength);
    seg.ensure(SHM_HEADER_BYTES + (local + 1) * slot);
    const n = array.length;
    const at = (j: number) => viewOf(dtype, seg.buffer, SHM_HEADER_BYTES + j * slot, n);
    // A lane whose part is this rank's own chunk skips the barrier before the ring and reduces its chunk
    // frame by frame as the ring first needs it, so the local reduce overlaps the ring's traffic; and as
    // only this rank reads its own part of its slot, that part is read from `array` and never copied in.
    const ownPart = spans && st.ring?.lanes === local;
    const [ls, le] = st.ring ? chunkBounds(n, st.ring.lanes)[st.ring.lane]! : [0, 0];
    if (ownPart) {
      copyInto(at(seg.rank).subarray(0, ls), array.subarray(0, ls));
      copyInto(at(seg.rank).subarray(le), array.subarray(le));
    } else copyInto(at(seg.rank), array);
    const ctx = barrierContext(st, timeoutMs);
    await seg.barrier(ctx);
    checkSignatures(st, seq, signature);
    // The segment may have been remapped by ensure() only before the barrier: views from here stay valid.
    const [s, e] = chunkBounds(n, local)[seg.rank]!;
    // Reduce elements [a, b) of this rank's chunk over the node's inputs, into the result slot (this
    // rank's input from `array` when its part was not copied in).
    const localReduce = (a: number, b: number) =>
      reduceAll(
        at(local).subarray(a, b),
        Array.from({ length: local }, (_, j) => (ownPart && j === seg.rank ? array : at(j)).subarray(a, b)),
        localOp,
      );
    if (!ownPart && e > s) {
      localReduce(s, e);
      if (op === 'mean' && !spans) finishMean(at(local).subarray(s, e), worldSize);
    }
    if (!ownPart) await seg.barrier(ctx);
    if (spans) {
      if (st.ring) {
        const { ring, index, count } = st.ring;
        const part = at(local).subarray(ls, le);
        const prepare = ownPart ? (a: number, b: number) => localReduce(ls + a, ls + b) : undefined;
        if (le > ls) await ring.allreduce(part, dtype, localOp, index, count, ctx, prepare);
        if (op === 'mean') finishMean(part, worldSize);
        // This lane's part is final: copy it out while the other lanes finish, the rest after the barrier.
        copyInto(array.subarray(ls, le), part);
        await seg.barrier(ctx);
        copyInto(array.subarray(0, ls), at(local).subarray(0, ls));
        copyInto(array.subarray(le), at(local).subarray(le));
        return array;
      }
      await seg.barrier(ctx);
    }
    copyInto(array, at(local));
    return array;
  });
}

/** A barrier of the group through the segment (one futex barrier; mismatched calls fail on every rank). */
export async function barrierShm(st: ShmRank, timeoutMs?: number): Promise<void> {
  await inSegment(st, 'barrier', async (seq) => {
    await st.segment.barrier(barrierContext(st, timeoutMs));
    checkSignatures(st, seq, 'barrier');
  });
}
