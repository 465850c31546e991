/**
 * What the GCS answers to control calls, without sockets: the actor directory with names per
 * namespace, the internal KV, the node table and state listings (through the server's nodes), the
 * dashboard URL and the head's jobs. One handler per call kind in a typed table; every field a peer
 * sends is checked, and a bad call is a {@link GcsCallError} (the server turns it into an error reply).
 * @module
 */
import { tsray, type GcsCall, type GcsCallKind, type GcsResult } from '@tsray/protocol';
import {
  type ActorDirectoryEntry,
  GcsCallError,
  actorEntryFromWire,
  actorEntryToWire,
  actorUpdateFromWire,
  boundedName,
  callKindOf,
  notServedHere,
  parseStateRows,
  requiredName,
  type StateRows,
} from '@tsray/core/internal';
import type { GcsStorage, GcsTables } from './gcs-storage.js';
import { logger } from './logger.js';

/** What the service needs from the GCS server around it (fakes in unit tests). */
export interface GcsServiceHost {
  /** The node table, wire form (dead nodes included). */
  nodes(): tsray.v1.INodeInfo[];
  /** Send `call` to every alive node; the answers of those that answered in time. */
  askNodes(call: GcsCall, timeoutMs?: number): Promise<{ nodeId: string; response: tsray.v1.IGcsResponse }[]>;
}

type Handler<K extends GcsCallKind> = (from: string, arg: NonNullable<tsray.v1.IGcsRequest[K]>) => GcsResult | Promise<GcsResult>;

/** The GCS's answers to control calls. */
export class GcsService {
  private readonly actors = new Map<string, ActorDirectoryEntry>();
  /** `${namespace}\0${name}` → actor id of the live actor holding the name. */
  private readonly names = new Map<string, string>();
  private readonly kv = new Map<string, Buffer>();
  /** The jobs HTTP API's URL (the head sets it), told to clients that ask by GCS address. */
  dashboardUrl: string | undefined;
  /** The head's jobs (the head sets it when it runs the jobs API). */
  listJobs: (() => unknown[]) | undefined;
  /** Where the tables are kept (none: in memory only, lost with the process). */
  private storage: GcsStorage | undefined;
  /** The jobs rows loaded from the store (the head's JobManager takes them back). */
  private loadedJobs: unknown[] = [];

  /** One handler per call the GCS serves; calls meant for nodes (state_snapshot, state_query) are not here. */
  private readonly handlers: { [K in GcsCallKind]?: Handler<K> } = {
    actorRegister: async (from, a) => {
      const id = this.registerActor(from, a);
      await this.persistActor(id);
      return { ok: true };
    },
    actorUpdate: async (_from, a) => {
      const id = this.updateActor(a);
      if (id) await this.persistActor(id);
      return { ok: id !== undefined };
    },
    actorLookup: (_from, a) => ({ actors: { actors: this.lookupActor(a).map(actorEntryToWire) } }),
    listActors: () => ({ actors: { actors: this.actorEntries().map(actorEntryToWire) } }),
    listNodes: () => ({ nodes: { nodes: this.host.nodes() } }),
    clusterEntry: () => ({ nodes: { nodes: this.host.nodes() } }),
    clusterDashboard: () => ({ dashboardUrl: this.dashboardUrl ?? '' }),
    kvPut: async (_from, a) => {
      const key = requiredName('key', a.key);
      const added = this.kvPut(key, Buffer.from(a.value ?? []), a.overwrite === true);
      if (added) await this.storage?.put('kv', key, this.kv.get(key)!.toString('base64'));
      return { added };
    },
    kvGet: (_from, a) => {
      const value = this.kv.get(requiredName('key', a.key));
      return { value: value ? { value } : {} };
    },
    kvDel: async (_from, a) => {
      const key = requiredName('key', a.key);
      const deleted = this.kv.delete(key);
      if (deleted) await this.storage?.del('kv', key);
      return { deleted };
    },
    kvKeys: (_from, a) => {
      const prefix = boundedName('key', a.key);
      return { keys: { keys: [...this.kv.keys()].filter((k) => k.startsWith(prefix)) } };
    },
    stateGather: async (_from, a) => ({ state: { json: await this.stateDocuments(boundedName('what', a.what) || 'all') } }),
    jobEnd: (_from, a) => {
      // A driver left on `from`: its job ends on every other node too (workers, actors, groups).
      void this.host.askNodes({ jobEnd: { jobId: boundedName('jobId', a.jobId) } });
      return { ok: true };
    },
    listJobs: () => ({ state: { json: [JSON.stringify(this.listJobs?.() ?? [])] } }),
  };

  constructor(private readonly host: GcsServiceHost) {}

  /** Serve one call from node `from`. @throws GcsCallError: UNKNOWN_MESSAGE, MALFORMED or CALL_FAILED. */
  serve(from: string, req: tsray.v1.IGcsRequest): GcsResult | Promise<GcsResult> {
    const kind = callKindOf(req);
    const handler = this.handlers[kind] as Handler<typeof kind> | undefined;
    if (!handler) throw notServedHere(kind, 'the GCS');
    return handler(from, req[kind] as NonNullable<tsray.v1.IGcsRequest[typeof kind]>);
  }

  /** The actor directory. */
  actorEntries(): ActorDirectoryEntry[] {
    return [...this.actors.values()];
  }

  /** Node `nodeId` died: its live actors are restarting (their owners restart them elsewhere or mark them dead). */
  nodeDied(nodeId: string): void {
    for (const a of this.actors.values()) {
      if (a.hostNodeId !== nodeId || a.state === 'DEAD') continue;
      a.state = 'RESTARTING';
      void this.persistActor(a.actorId).catch((err: Error) => logger().warn({ actorId: a.actorId, err }, 'an actor row was not stored'));
    }
  }

  /**
   * Keep the tables in `storage` from now on, starting from the rows it holds (a restarted head finds
   * the actors, names, KV and jobs of before). Rows that do not read are skipped with a warning.
   */
  restore(storage: GcsStorage, tables: GcsTables): void {
    this.storage = storage;
    for (const [id, json] of tables.actors) {
      const e = parseRow<ActorDirectoryEntry>('actors', id, json);
      if (e) this.actors.set(id, e);
    }
    for (const [key, id] of tables.names) if (this.actors.get(id)?.state !== 'DEAD') this.names.set(key, id);
    for (const [key, b64] of tables.kv) this.kv.set(key, Buffer.from(b64, 'base64'));
    this.loadedJobs = [...tables.jobs].flatMap(([id, json]) => parseRow<unknown>('jobs', id, json) ?? []);
  }

  /** The jobs rows the store held when the head started. */
  restoredJobs(): unknown[] {
    return this.loadedJobs;
  }

  /** Store a job's row (`info` undefined: it was deleted). */
  async persistJob(submissionId: string, info: unknown): Promise<void> {
    if (info === undefined) await this.storage?.del('jobs', submissionId);
    else await this.storage?.put('jobs', submissionId, JSON.stringify(info));
  }

  /** Store an actor's row and its name's. */
  private async persistActor(actorId: string): Promise<void> {
    const e = this.actors.get(actorId);
    if (!this.storage || !e) return;
    await this.storage.put('actors', actorId, JSON.stringify(e));
    if (!e.name) return;
    const key = nameKey(e.namespace, e.name);
    const holder = this.names.get(key);
    if (holder) await this.storage.put('names', key, holder);
    else await this.storage.del('names', key);
  }

  /** Every alive node's state rows of `what`, parsed (a node's unreadable document counts as none). */
  async gatherState(what: string): Promise<StateRows[]> {
    return (await this.stateDocuments(what)).flatMap((doc) => {
      try {
        return [parseStateRows(doc)];
      } catch (err) {
        logger().warn({ err }, 'a node sent an unreadable state snapshot; skipped');
        return [];
      }
    });
  }

  private async stateDocuments(what: string): Promise<string[]> {
    const answers = await this.host.askNodes({ stateSnapshot: { what } });
    return answers.flatMap((a) => a.response.state?.json ?? []);
  }

  /** Add an actor; returns its id. */
  private registerActor(from: string, wire: tsray.v1.IActorEntry): string {
    const e = actorEntryFromWire(wire);
    if (e.name) {
      const key = nameKey(e.namespace, e.name);
      const other = this.names.get(key);
      if (other && other !== e.actorId && this.actors.get(other)?.state !== 'DEAD') {
        throw new GcsCallError(
          tsray.v1.ErrorCode.ERROR_CODE_CALL_FAILED,
          `the actor name "${e.name}" is already taken in namespace "${e.namespace}" (actor ${other})`,
        );
      }
      this.names.set(key, e.actorId);
    }
    this.actors.set(e.actorId, { ...e, ownerNodeId: e.ownerNodeId || from, hostNodeId: e.hostNodeId || from });
    return e.actorId;
  }

  /** Apply the fields an update sets; its id, or undefined for an unknown actor. A dead actor stays dead (its name is free). */
  private updateActor(wire: tsray.v1.IActorUpdate): string | undefined {
    const { actorId, fields } = actorUpdateFromWire(wire);
    const e = this.actors.get(actorId);
    if (!e) return undefined;
    if (e.state === 'DEAD' && fields.state !== undefined && fields.state !== 'DEAD') {
      throw new GcsCallError(tsray.v1.ErrorCode.ERROR_CODE_CALL_FAILED, `actor ${actorId} is dead; it cannot become ${fields.state}`);
    }
    // A new incarnation each time it becomes ALIVE: callers with a cached host re-resolve past it.
    const moved =
      (fields.hostNodeId !== undefined && fields.hostNodeId !== e.hostNodeId) || (fields.numRestarts !== undefined && fields.numRestarts !== e.numRestarts);
    if (fields.state === 'ALIVE' && (e.state !== 'ALIVE' || moved)) e.version = (e.version ?? 0) + 1;
    if (fields.state !== undefined) e.state = fields.state;
    if (fields.hostNodeId !== undefined) e.hostNodeId = fields.hostNodeId;
    if (fields.pid !== undefined) e.pid = fields.pid;
    if (fields.numRestarts !== undefined) e.numRestarts = fields.numRestarts;
    if (fields.deathCause !== undefined) e.deathCause = fields.deathCause;
    const key = nameKey(e.namespace, e.name);
    if (e.state === 'DEAD' && e.name && this.names.get(key) === e.actorId) this.names.delete(key);
    return actorId;
  }

  /** The live actor with this id, or with this name in this namespace (none or one). */
  private lookupActor(a: tsray.v1.IActorLookup): ActorDirectoryEntry[] {
    const byId = boundedName('actorId', a.actorId);
    const id = byId || this.names.get(nameKey(boundedName('namespace', a.namespace), requiredName('name', a.name)));
    const e = id ? this.actors.get(id) : undefined;
    return e && e.state !== 'DEAD' ? [e] : [];
  }

  private kvPut(key: string, value: Buffer, overwrite: boolean): boolean {
    if (!overwrite && this.kv.has(key)) return false;
    this.kv.set(key, value);
    return true;
  }
}

/** A stored row as JSON, or undefined (warned) when it does not parse. */
function parseRow<T>(table: string, key: string, json: string): T | undefined {
  try {
    return JSON.parse(json) as T;
  } catch (err) {
    logger().warn({ table, key, err }, 'a stored GCS row does not read; skipped');
    return undefined;
  }
}

function nameKey(namespace: string, name: string): string {
  return `${namespace}\0${name}`;
}
