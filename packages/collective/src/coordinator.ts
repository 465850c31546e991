/**
 * The coordinator of one collective group: a named async actor (`collective:<group>` in namespace
 * `tsray-collective`) every rank calls once per round of a collective. It is the rendezvous, not the
 * data path: ranks put their chunks into the object store and send only the refs; the coordinator hands
 * each rank the refs it needs once every rank has arrived (payloads under 64 KiB travel inline and are
 * reduced here: the "single reducer"). It also watches the ranks: while a round waits, it asks the
 * cluster's actor table every 250 ms, and a rank whose actor died or restarted fails the round on every
 * rank with a reply naming it (`FailureInfo`), which each rank turns into `CollectiveRankDiedError`.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { actor, getRuntimeContext, listActors, ObjectRef, type ActorListEntry } from '@tsray/core';
import { componentLogger } from '@tsray/core/internal';
import { asArray, finishMean, reduceInto, type Dtype, type NumericArray, type ReduceOp } from './dtypes.js';
import type { FailureInfo } from './errors.js';
import { SHM_MAX_RANKS } from './shm-segment.js';

const log = componentLogger('collective');

/** How often a waiting round checks that its ranks are alive (the failure-detection latency). */
const LIVENESS_INTERVAL_MS = 250;

/** Who a rank is: its actor (when it runs in one), process and node. */
export interface RankIdentity {
  /** The rank asked for (`initCollectiveGroup`); absent when the group was created from a list of actors. */
  rank?: number;
  actorId?: string;
  pid: number;
  nodeId: string;
  /** The rank can use a shared-memory segment (a TypeScript process with the native addon, on Linux). */
  shm?: boolean;
}

/** A coordinator reply: the value of the round, or the failure every rank of it gets. */
export type Reply<T> = { ok: true; value: T } | { ok: false; failure: FailureInfo };

/** What a rank learns when it joins: its rank, the world size and the epoch its rounds must carry. */
export interface Joined {
  rank: number;
  worldSize: number;
  epoch: number;
  /**
   * Every rank and the coordinator are on one node: chunks go as object refs (zero-copy shared memory).
   * Otherwise chunks travel as values in the calls and their replies (the object transfer path carries
   * call arguments and returns between nodes, not objects named only by a ref inside a reply).
   */
  sameNode: boolean;
  /**
   * Every rank is on one node and can map a shared-memory segment: its path (in /dev/shm, unique to this
   * epoch). Allreduce and barrier then run in it (`shm-segment.ts`), with no message per op.
   */
  shm?: string;
  /**
   * With `shm`: the ranks on this rank's node, in rank order (they share its segment; the first is the
   * node's leader). Fewer than `worldSize` when the group spans nodes: the lanes then combine their
   * nodes' sums over rings between the nodes (`node-ring.ts`).
   */
  shmRanks?: number[];
}

/**
 * One round: `gather` gives every rank the list of all items; `scatter` gives rank r the r-th entry of
 * every rank's item (an array per destination); `reduce` reduces the items (arrays of `dtype`) with `op`
 * and gives every rank the result.
 */
export interface RoundRequest {
  epoch: number;
  seq: number;
  rank: number;
  mode: 'gather' | 'scatter' | 'reduce';
  item: unknown;
  /** The same on every rank of a round (operation, dtype, length); a mismatch fails the round. */
  signature: string;
  op?: ReduceOp;
  dtype?: Dtype;
  timeoutMs?: number;
}

interface Waiter<T> {
  resolve(r: Reply<T>): void;
}

interface Round {
  seq: number;
  signature: string;
  mode: RoundRequest['mode'];
  op?: ReduceOp;
  dtype?: Dtype;
  items: unknown[];
  waiters: (Waiter<unknown> | undefined)[];
  arrived: number;
  startedAt: number;
  deadline: number;
}

interface Member {
  actorId?: string;
  pid: number;
  nodeId: string;
}

/**
 * The actor table by id. An actor hosted on another node than its owner is listed by both: the owner's
 * entry has pid 0 and may still say ALIVE after the host's says DEAD (pid 0 too). Keep the entry with a
 * process; else one that is not ALIVE (dead or restarting: the host's news); else the first.
 */
function actorsById(actors: ActorListEntry[]): Map<string, ActorListEntry> {
  const weight = (a: ActorListEntry) => (a.pid !== 0 ? 2 : a.state !== 'ALIVE' ? 1 : 0);
  const byId = new Map<string, ActorListEntry>();
  for (const a of actors) {
    const prev = byId.get(a.actorId);
    if (!prev || weight(a) > weight(prev)) byId.set(a.actorId, a);
  }
  return byId;
}

/** Every ObjectRef inside a value (arrays and plain objects), to release when a round is consumed. */
function refsIn(v: unknown, out: ObjectRef<unknown>[]): void {
  if (v instanceof ObjectRef) out.push(v);
  else if (Array.isArray(v)) for (const x of v) refsIn(x, out);
}

/** The coordinator actor's class (see the module comment). Created by `createGroup` / `initCollectiveGroup`. */
export class CollectiveCoordinator {
  private epoch = 0;
  private members: (Member | undefined)[];
  /** The process of each rank's current incarnation (undefined: not known yet, learnt at the next check). */
  private pids: (number | undefined)[] = [];
  private joining = new Map<number, { who: Member; shm: boolean; waiter: Waiter<Joined> }>();
  /** The current epoch's shared-memory segments (removed when the next epoch forms). */
  private shmPaths: string[] = [];
  private joinStartedAt = 0;
  private rounds = new Map<number, Round>();
  private broken: FailureInfo | undefined;
  private consumed: ObjectRef<unknown>[][] = [];
  private timer: NodeJS.Timeout | undefined;
  private checking = false;

  /** `memberActorIds`: the ranks' actor ids in rank order (`createGroup(actors)`), or empty (ranks say their rank). */
  constructor(
    private readonly group: string,
    private readonly worldSize: number,
    private readonly memberActorIds: string[] = [],
  ) {
    this.members = memberActorIds.map((actorId) => ({ actorId, pid: 0, nodeId: '' }));
  }

  /**
   * Answers the world size once every member actor of `createGroup(actors)` is ALIVE (at most 60 s),
   * noting the process of each: from then on, a member found dead, restarting or in another process
   * has died, and fails the collective it is in or that waits for it.
   */
  async ready(): Promise<number> {
    const deadline = Date.now() + 60_000;
    while (this.memberActorIds.length > 0 && Date.now() < deadline) {
      const byId = actorsById(await listActors());
      const states = this.memberActorIds.map((id) => byId.get(id));
      if (states.every((a) => (a?.state === 'ALIVE' && a.pid !== 0) || a?.state === 'DEAD')) {
        states.forEach((a, r) => {
          if (a?.state === 'ALIVE') this.pids[r] = a.pid;
        });
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return this.worldSize;
  }

  /**
   * Join the group (again, after a failure or a restart): resolves when every rank has joined, with a new
   * epoch; rounds of older epochs are refused. Joining is itself a barrier.
   */
  async join(who: RankIdentity): Promise<Reply<Joined>> {
    // A Python rank does not know its actor id: find it by process, so its death is noticed too.
    if (!who.actorId) who.actorId = (await listActors()).find((a) => a.pid === who.pid && a.nodeId === who.nodeId && a.state === 'ALIVE')?.actorId;
    const rank = this.rankOf(who);
    if (typeof rank === 'string') return { ok: false, failure: { kind: 'usage', message: rank } };
    if (this.joining.size === 0) this.joinStartedAt = Date.now();
    const prev = this.joining.get(rank);
    if (prev) prev.waiter.resolve({ ok: false, failure: { kind: 'usage', message: `rank ${rank} joined twice` } });
    const member: Member = { actorId: who.actorId ?? this.members[rank]?.actorId, pid: who.pid, nodeId: who.nodeId };
    this.members[rank] = member;
    this.pids[rank] = who.pid;
    const p = new Promise<Reply<Joined>>((resolve) => this.joining.set(rank, { who: member, shm: who.shm === true, waiter: { resolve } }));
    if (this.joining.size === this.worldSize) this.formEpoch();
    else this.watch();
    return p;
  }

  /** One round of a collective (see {@link RoundRequest}). */
  async exchange(req: RoundRequest): Promise<Reply<unknown>> {
    if (this.broken) return { ok: false, failure: this.broken };
    if (req.epoch !== this.epoch) {
      return { ok: false, failure: { kind: 'usage', message: `rank ${req.rank} is in epoch ${req.epoch}, the group in ${this.epoch}: join again` } };
    }
    let round = this.rounds.get(req.seq);
    if (!round) {
      const now = Date.now();
      round = {
        seq: req.seq,
        signature: req.signature,
        mode: req.mode,
        op: req.op,
        dtype: req.dtype,
        items: new Array(this.worldSize),
        waiters: new Array(this.worldSize),
        arrived: 0,
        startedAt: now,
        deadline: req.timeoutMs ? now + req.timeoutMs : Number.POSITIVE_INFINITY,
      };
      this.rounds.set(req.seq, round);
    }
    if (round.signature !== req.signature || round.mode !== req.mode) {
      this.fail({
        kind: 'usage',
        message: `ranks disagree on collective #${req.seq}: rank ${req.rank} called ${req.signature}, another rank ${round.signature}`,
      });
      return { ok: false, failure: this.broken! };
    }
    if (round.waiters[req.rank]) return { ok: false, failure: { kind: 'usage', message: `rank ${req.rank} called collective #${req.seq} twice` } };
    const p = new Promise<Reply<unknown>>((resolve) => {
      round.waiters[req.rank] = { resolve: resolve as Waiter<unknown>['resolve'] };
    });
    round.items[req.rank] = req.item;
    round.arrived++;
    if (round.arrived === this.worldSize) this.complete(round);
    else this.watch();
    return p;
  }

  /**
   * Whether the group of `epoch` is still sound, for ranks waiting in a shared-memory barrier (they send
   * no round here): checks the ranks' actors now and fails the group when one died.
   */
  async health(epoch: number): Promise<Reply<null>> {
    if (!this.broken && epoch === this.epoch) {
      const dead = this.deadRank(await listActors());
      if (dead) this.fail({ kind: 'rank_died', rank: dead.rank, message: dead.detail });
    }
    if (this.broken) return { ok: false, failure: this.broken };
    if (epoch !== this.epoch) return { ok: false, failure: { kind: 'usage', message: `the group moved to epoch ${this.epoch}: join again` } };
    return { ok: true, value: null };
  }

  /** A rank could not use the epoch's segment (`failure` says why): fail the group so every rank learns it. */
  async abort(epoch: number, failure: FailureInfo): Promise<void> {
    if (epoch === this.epoch && !this.broken) this.fail(failure);
  }

  private rankOf(who: RankIdentity): number | string {
    if (who.rank !== undefined) {
      if (!Number.isInteger(who.rank) || who.rank < 0 || who.rank >= this.worldSize) return `rank ${who.rank} is not in 0..${this.worldSize - 1}`;
      return who.rank;
    }
    const i = who.actorId ? this.memberActorIds.indexOf(who.actorId) : -1;
    if (i < 0) return `the caller (pid ${who.pid}) is not one of the group's actors; pass a rank (initCollectiveGroup)`;
    return i;
  }

  private formEpoch(): void {
    this.epoch++;
    this.broken = undefined;
    this.rounds.clear();
    const joined = [...this.joining];
    this.joining.clear();
    const here = getRuntimeContext().nodeId;
    const sameNode = joined.every(([, j]) => j.who.nodeId === here);
    // A segment left by the previous epoch (a rank died before every rank had mapped it, so rank 0 did
    // not unlink it): remove it. Best effort: it is on this node only when the ranks were.
    for (const path of this.shmPaths.splice(0)) {
      try {
        unlinkSync(path);
      } catch {
        /* unlinked by the node's first rank, or on another node */
      }
    }
    const shm = this.worldSize <= SHM_MAX_RANKS && joined.every(([, j]) => j.shm) ? this.segments(joined) : undefined;
    log.debug({ group: this.group, epoch: this.epoch, shm: this.shmPaths }, 'collective group formed');
    for (const [rank, j] of joined) {
      const seg = shm?.get(j.who.nodeId);
      j.waiter.resolve({ ok: true, value: { rank, worldSize: this.worldSize, epoch: this.epoch, sameNode, shm: seg?.path, shmRanks: seg?.ranks } });
    }
  }

  /**
   * One segment per node of the epoch's ranks: its path (named tsray-<pid>-<hex> as the nodes' arenas,
   * so a later init() removes it if this process died first) and its ranks in rank order.
   */
  private segments(joined: [number, { who: Member }][]): Map<string, { path: string; ranks: number[] }> {
    const byNode = new Map<string, { path: string; ranks: number[] }>();
    for (const [rank, j] of [...joined].sort((a, b) => a[0] - b[0])) {
      let seg = byNode.get(j.who.nodeId);
      if (!seg) {
        seg = { path: `/dev/shm/tsray-${process.pid}-${randomBytes(16).toString('hex')}`, ranks: [] };
        byNode.set(j.who.nodeId, seg);
      }
      seg.ranks.push(rank);
    }
    this.shmPaths = [...byNode.values()].map((x) => x.path);
    return byNode;
  }

  private complete(round: Round): void {
    this.rounds.delete(round.seq);
    let values: unknown[];
    try {
      values = this.results(round);
    } catch (e) {
      this.fail({ kind: 'usage', message: `collective #${round.seq} (${round.signature}): ${(e as Error).message}` });
      return;
    }
    // Chunks of earlier rounds were read by every rank before it called this one: drop our refs to them.
    const refs: ObjectRef<unknown>[] = [];
    refsIn(round.items, refs);
    for (const old of this.consumed.splice(0)) for (const r of old) r.release();
    this.consumed.push(refs);
    for (let r = 0; r < round.waiters.length; r++) round.waiters[r]?.resolve({ ok: true, value: values[r] });
  }

  private results(round: Round): unknown[] {
    const n = this.worldSize;
    if (round.mode === 'gather') return new Array(n).fill(round.items);
    if (round.mode === 'scatter') {
      return Array.from({ length: n }, (_, r) => round.items.map((it) => (it as unknown[])[r] ?? null));
    }
    const dtype = round.dtype!;
    const op = round.op!;
    let acc: NumericArray | undefined;
    for (const it of round.items) {
      const a = asArray(it, dtype);
      if (!acc) acc = a.slice();
      else if (a.length !== acc.length) throw new Error(`lengths differ (${a.length} vs ${acc.length})`);
      else reduceInto(acc, a, op);
    }
    if (op === 'mean') finishMean(acc!, n);
    return new Array(n).fill(acc);
  }

  /** Fail every waiting round and join, and every later call until the ranks join again. */
  private fail(f: FailureInfo): void {
    this.broken = f;
    // That incarnation is reported; a restarted one is waited for (its process learnt at the next check).
    if (f.rank !== undefined) this.pids[f.rank] = undefined;
    log.warn({ group: this.group, failure: f }, 'collective aborted');
    for (const round of this.rounds.values()) for (const w of round.waiters) w?.resolve({ ok: false, failure: f });
    this.rounds.clear();
    for (const j of this.joining.values()) j.waiter.resolve({ ok: false, failure: f });
    this.joining.clear();
  }

  private watch(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.check(), LIVENESS_INTERVAL_MS);
  }

  private waitingSince(): number | undefined {
    let t: number | undefined;
    for (const r of this.rounds.values()) t = Math.min(t ?? r.startedAt, r.startedAt);
    if (this.joining.size > 0) t = Math.min(t ?? this.joinStartedAt, this.joinStartedAt);
    return t;
  }

  private async check(): Promise<void> {
    const since = this.waitingSince();
    if (since === undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    if (this.checking || Date.now() - since < LIVENESS_INTERVAL_MS) return;
    this.checking = true;
    try {
      const now = Date.now();
      for (const round of this.rounds.values()) {
        if (now > round.deadline) {
          const missing = round.waiters.flatMap((w, r) => (w ? [] : [r]));
          const timeoutMs = round.deadline - round.startedAt;
          return this.fail({ kind: 'timeout', message: `timed out after ${timeoutMs} ms`, missing, timeoutMs });
        }
      }
      const dead = this.deadRank(await listActors());
      if (dead) this.fail({ kind: 'rank_died', rank: dead.rank, message: dead.detail });
    } catch (e) {
      log.warn({ group: this.group, err: e }, 'collective liveness check failed');
    } finally {
      this.checking = false;
    }
  }

  /** The first rank whose actor is gone: dead, restarting, or running in another process than the one known. */
  private deadRank(actors: ActorListEntry[]): { rank: number; detail: string } | undefined {
    const byId = actorsById(actors);
    for (let rank = 0; rank < this.worldSize; rank++) {
      const id = this.members[rank]?.actorId;
      const a = id ? byId.get(id) : undefined;
      if (!a) continue;
      const known = this.pids[rank];
      if (a.state === 'DEAD') return { rank, detail: `actor ${a.className} ${a.actorId} is DEAD${a.deathCause ? `: ${a.deathCause}` : ''}` };
      if (known === undefined) {
        if (a.state === 'ALIVE' && a.pid !== 0) this.pids[rank] = a.pid;
        continue;
      }
      if (a.state !== 'ALIVE' || (a.pid !== 0 && a.pid !== known)) {
        return {
          rank,
          detail: `the process of actor ${a.className} ${a.actorId} (pid ${known}) died; the actor is ${a.state === 'ALIVE' ? 'running again in a new process' : a.state}`,
        };
      }
    }
    return undefined;
  }
}

/** The coordinator as an actor class (async, so every rank's call waits concurrently). */
export const RemoteCollectiveCoordinator = actor(CollectiveCoordinator);
