/**
 * Where objects are in the cluster, as Ray's owner-based object directory: the owner of a large result
 * made on another node records that node as its holder instead of copying the bytes back; nodes that
 * pull a copy tell the owner (a new holder); holders on dead nodes are dropped. A node that needs an
 * object located elsewhere (its driver `get`s it, a local task takes it as an argument) pulls it from a
 * holder (object-puller.ts); a task forwarded to another node carries its large arguments' locations,
 * so that node pulls them from the holders directly: a result made on B and consumed on C moves B → C.
 * @internal
 */
import type { EnvelopeBody, tsray } from '@tsray/protocol';
import { config } from '../config.js';
import { decodeErrorPayload } from '../error-payload.js';
import { logger } from '../logger.js';
import { encodingFromWire, encodingToWire } from '../wire.js';
import { DataPlaneClient } from './data-plane-client.js';
import { ObjectPuller, type PullHeader, type PullStats } from './object-puller.js';
import type { ObjectEntry, ObjectTable, StoredObject } from './object-table.js';
import { PeerTraffic } from './peer-traffic.js';
import { chunkCheck, errorObject } from './node-support.js';

/** What the directory needs from its node. */
export interface ObjectDirectoryHost {
  readonly nodeId: string;
  /** The cluster token (data-plane session keys derive from it). */
  readonly token: string;
  /** tcp://host:port of node `nodeId`'s control socket. */
  addressOf(nodeId: string): string | undefined;
  readonly objects: Pick<ObjectTable, 'get' | 'seal' | 'locate' | 'unlocate'>;
  readonly puller: ConstructorParameters<typeof ObjectPuller>[0]['store'];
  /** Send to node `nodeId` over this node's connection to it; false when it cannot be reached. */
  sendTo(nodeId: string, body: EnvelopeBody): boolean;
  isAlive(nodeId: string): boolean;
  /** A pulled object holds refs: fetch those this node lacks from the node it came from. */
  nestedFrom(nodeId: string, contained: readonly string[]): void;
  /**
   * Every copy of `id` is gone: rebuild it from its lineage (lineage.ts). Undefined when a rebuild
   * started (waiters get the new copy), else why it cannot be rebuilt.
   */
  rebuild(id: string): string | undefined;
  /** Every copy of `id`, owned by node `owner`, is gone: wait for it from its owner (which rebuilds it or seals it lost). */
  fromOwner(owner: string, id: string): void;
}

/** What this node knows of an object held elsewhere. */
interface Located {
  header: PullHeader;
  /** Nodes holding a copy (this node not included). */
  holders: string[];
  /** The owner, told about the copy this node pulls (set on nodes a task's arguments were announced to). */
  reportTo: string | undefined;
  /** The node this node holds a reference at (the producer of a result it owns): released when freed here. */
  refAt: string | undefined;
}

/**
 * True for an object that stays where it is and is pulled: larger than one chunk (smaller ones travel
 * with the answer, cheaper than a pull), not an error, and without nested refs (those keep travelling
 * with their container, whose seal holds them: see object-locations.ts).
 */
export function staysAtHolder(d: Pick<StoredObject, 'size' | 'inline' | 'encoding' | 'contained'>, chunkBytes = config().transferChunkBytes): boolean {
  return d.size > chunkBytes && !d.inline && d.encoding !== 'error' && d.contained.length === 0;
}

/** The node's object directory and its pulls. */
export class ObjectDirectory {
  private readonly located = new Map<string, Located>();
  /** Payload bytes to and from each peer node. */
  readonly traffic = new PeerTraffic();
  readonly puller: ObjectPuller;
  /** Sessions on the holders' sealed data planes, which pull requests prefer (data-plane-client.ts). */
  readonly dataPlane: DataPlaneClient;

  constructor(private readonly host: ObjectDirectoryHost) {
    this.dataPlane = new DataPlaneClient({
      token: host.token,
      nodeId: host.nodeId,
      sendControl: (n, body) => host.sendTo(n, body),
      addressOf: (n) => host.addressOf(n),
      chunkTarget: (n, c, length) => {
        this.traffic.add(n, 'in', length);
        return this.puller.target(n, c, length);
      },
      chunkLanded: (n, c, ok) => this.puller.landed(n, c, ok),
      checks: (c, bytes) => chunkCheck(bytes) === (c.crc32 ?? 0) >>> 0,
      onPullFailed: (n, f) => this.puller.onFailed(n, f.objectId ?? '', f.reason ?? ''),
      lost: (n) => this.puller.retryFrom(n),
    });
    this.puller = new ObjectPuller({
      store: host.puller,
      sendTo: (n, body) => this.dataPlane.send(n, body) || host.sendTo(n, body),
      isAlive: (n) => host.isAlive(n),
      abandon: (n, id) => this.dataPlane.abandon(n, id),
      // from '' = no holder was left for the pull.
      done: (id, data, from) => (from === '' ? this.pullLost(id, data) : this.pulled(id, data, from)),
    });
  }

  /** Bytes per peer and pull gauges (node stats, `listTransferStats()`). */
  stats(): ReturnType<PeerTraffic['snapshot']> & { pulls: PullStats & ReturnType<DataPlaneClient['stats']>; located: number } {
    return { ...this.traffic.snapshot(), pulls: { ...this.puller.stats(), ...this.dataPlane.stats() }, located: this.located.size };
  }

  /** A holder's answer on the control link: it has no copy (PullFailed), or a data-plane session (DataPlaneOpened). */
  onPullAnswer(from: string, m: tsray.v1.Envelope): void {
    if (m.pullFailed) this.puller.onFailed(from, m.pullFailed.objectId ?? '', m.pullFailed.reason ?? '');
    else if (m.dataPlaneOpened) this.dataPlane.onOpened(from, m.dataPlaneOpened);
  }

  /** The node leaves: data-plane sessions close. */
  close(): void {
    this.dataPlane.close();
  }

  /** Number of objects located elsewhere (for tests). */
  get size(): number {
    return this.located.size;
  }

  /**
   * Node `from` says where objects are (ObjectLocations). Returns the ids named (the caller finishes
   * the forwarded tasks that made them). `refAt`: this node holds a
   * reference to them at `from` (it subscribed there with locations_only).
   */
  onLocations(from: string, m: tsray.v1.IObjectLocations, refAt: boolean): string[] {
    const out: string[] = [];
    for (const loc of m.objects ?? []) {
      const h = loc.header ?? {};
      const id = h.objectId ?? '';
      const nodes = (loc.nodeIds ?? []).filter((n) => n && n !== this.host.nodeId);
      let l = this.located.get(id);
      if (!l) {
        const header: PullHeader = {
          encoding: encodingFromWire(h.encoding),
          rawKind: h.rawKind ?? '',
          size: Number(h.size ?? 0),
          contained: h.containedRefs ?? [],
        };
        l = { header, holders: [], reportTo: undefined, refAt: undefined };
        out.push(id);
        // Nobody here holds it: nothing to record.
        if (!this.host.objects.get(id)) continue;
        this.located.set(id, l);
      }
      for (const n of nodes) if (!l.holders.includes(n)) l.holders.push(n);
      if (m.ownerNode && m.ownerNode !== this.host.nodeId) l.reportTo = m.ownerNode;
      if (refAt) l.refAt = from;
      if (this.puller.has(id)) this.puller.pull(id, l.header, l.holders);
      if (!out.includes(id)) out.push(id);
      this.host.objects.locate(id);
    }
    return out;
  }

  /** Someone here waits for the data of `id`, located elsewhere: pull it. */
  need(id: string): void {
    const l = this.located.get(id);
    if (!l || this.host.objects.get(id)?.data !== undefined) return;
    this.puller.pull(id, l.header, l.holders);
  }

  /**
   * The ObjectLocations message announcing `ids` (sealed here or located elsewhere) to a node a task
   * goes to: holders elsewhere first (the producer), then this node when it has a copy.
   */
  announce(ids: readonly string[]): EnvelopeBody {
    const objects: tsray.v1.IObjectLocation[] = [];
    for (const id of ids) {
      const e = this.host.objects.get(id);
      const l = this.located.get(id);
      const d: PullHeader | undefined = e?.data ?? l?.header;
      if (!d) continue;
      const nodeIds = [...(l?.holders ?? []), ...(e?.data ? [this.host.nodeId] : [])];
      const header = { objectId: id, encoding: encodingToWire(d.encoding), rawKind: d.rawKind, containedRefs: d.contained, size: d.size };
      objects.push({ header, nodeIds });
    }
    return { objectLocations: { objects, ownerNode: this.host.nodeId } };
  }

  /** True for an object this node announces instead of pushing: large, sealed here or located elsewhere. */
  announces(e: ObjectEntry | undefined): boolean {
    if (!e) return false;
    return e.data ? staysAtHolder(e.data) : e.located === true && this.located.has(e.id);
  }

  /** True when this node holds a reference to `id` at node `nodeId` already (refs there are a set per connection). */
  holdsRefAt(id: string, nodeId: string): boolean {
    return this.located.get(id)?.refAt === nodeId;
  }

  /** `id` left this node's table: release the reference held at its producer. */
  freed(id: string): void {
    const l = this.located.get(id);
    if (!l) return;
    this.located.delete(id);
    if (l.refAt && this.host.isAlive(l.refAt)) this.host.sendTo(l.refAt, { refUpdates: { remove: [id] } });
  }

  /** Node `nodeId` died: its copies are gone; objects with no holder left are lost (sealed as such). */
  nodeDied(nodeId: string, reason: string): void {
    this.dataPlane.nodeDied(nodeId);
    this.puller.nodeDied(nodeId);
    for (const [id, l] of [...this.located]) {
      const i = l.holders.indexOf(nodeId);
      // Gone already: a pull of it found no holder left above (pullLost).
      if (i === -1 || !this.located.has(id)) continue;
      l.holders.splice(i, 1);
      if (l.refAt === nodeId) l.refAt = undefined;
      if (l.holders.length > 0 || this.puller.has(id) || this.host.objects.get(id)?.data !== undefined) continue;
      this.located.delete(id);
      this.host.objects.unlocate(id);
      if (this.toOwner(id, l)) continue;
      const refusal = this.host.rebuild(id);
      if (refusal === undefined) continue;
      const why = `node ${nodeId} died (${reason}) while it held the only copy of object ${id} (large results stay on the node that made them until needed); not rebuilt: ${refusal}`;
      logger().warn({ object: id, node: nodeId }, why);
      this.host.objects.seal(id, errorObject({ type: 'ObjectLostError', objectId: id, reason: why }));
    }
  }

  /** A pull of `id` found no holder left (`lost` is its ObjectLostError): rebuild it, or seal the error saying why not. */
  private pullLost(id: string, lost: StoredObject): void {
    const l = this.located.get(id);
    this.located.delete(id);
    this.host.objects.unlocate(id);
    if (this.toOwner(id, l)) return;
    const refusal = this.host.rebuild(id);
    if (refusal === undefined) return;
    const p = decodeErrorPayload(lost.inline!);
    const why = `${p.type === 'ObjectLostError' ? p.reason : 'no holder is left'}; not rebuilt: ${refusal}`;
    this.host.objects.seal(id, errorObject({ type: 'ObjectLostError', objectId: id, reason: why }));
  }

  /**
   * A lost object another live node owns (it announced it here with a task's arguments): this node
   * has no lineage for it, its owner does. Wait for it from the owner (subscribed there), which
   * rebuilds it and sends it, or sends the `ObjectLostError` saying why not. True when asked.
   */
  private toOwner(id: string, l: Located | undefined): boolean {
    const owner = l?.reportTo;
    if (owner === undefined || owner === this.host.nodeId || !this.host.isAlive(owner)) return false;
    logger().warn({ object: id, owner }, 'every holder of an object is gone: waiting for it from its owner (which rebuilds it)');
    this.host.fromOwner(owner, id);
    return true;
  }

  /** A pull ended: seal the copy, tell the owner about it, fetch refs nested in it. */
  private pulled(id: string, data: StoredObject, from: string): void {
    const l = this.located.get(id);
    this.host.objects.unlocate(id);
    this.host.objects.seal(id, data);
    if (!l || !from) return;
    if (l.reportTo) {
      const header = { objectId: id, encoding: encodingToWire(data.encoding), rawKind: data.rawKind, containedRefs: data.contained, size: data.size };
      this.host.sendTo(l.reportTo, { objectLocations: { objects: [{ header, nodeIds: [this.host.nodeId] }] } });
    }
    if (data.contained.length > 0) this.host.nestedFrom(from, data.contained);
  }
}
