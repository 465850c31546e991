/**
 * The typed client of the GCS: one method per control call, each returning its typed result. It sends
 * through a transport (the node's {@link ClusterLink}, or a fake in tests) and turns an error reply
 * into a {@link GcsCallError} carrying the receiver's code.
 * @internal
 */
import { tsray, type GcsCall, type GcsResultKind } from '@tsray/protocol';
import { type ActorDirectoryEntry, type ActorUpdateFields, GcsCallError, actorEntryFromWire, actorEntryToWire, actorUpdateToWire } from './control-plane.js';

/** Sends one call and resolves with the response (rejects on timeout or when the link closes). */
export type GcsTransport = (call: GcsCall, timeoutMs?: number) => Promise<tsray.v1.IGcsResponse>;

/** State rows of one node, by kind (`tasks`, `actors`, ...), as its state snapshot lists them. */
export type StateRows = Record<string, unknown[]>;

/** The GCS's control calls, typed. */
export class GcsClient {
  constructor(private readonly transport: GcsTransport) {}

  /** Add an actor to the directory. @throws GcsCallError (CALL_FAILED) when its name is taken in its namespace. */
  async registerActor(entry: ActorDirectoryEntry): Promise<void> {
    await this.expect({ actorRegister: actorEntryToWire(entry) }, 'ok');
  }

  /** Change what is known of an actor; false when the directory does not know it. */
  updateActor(actorId: string, fields: ActorUpdateFields): Promise<boolean> {
    return this.expect({ actorUpdate: actorUpdateToWire(actorId, fields) }, 'ok');
  }

  /** A live actor by id, or by name in a namespace; undefined when there is none. */
  async lookupActor(by: { actorId: string } | { name: string; namespace: string }): Promise<ActorDirectoryEntry | undefined> {
    const r = await this.expect({ actorLookup: by }, 'actors');
    const e = r.actors?.[0];
    return e ? actorEntryFromWire(e) : undefined;
  }

  /** Every actor of the directory. */
  async listActors(): Promise<ActorDirectoryEntry[]> {
    const r = await this.expect({ listActors: {} }, 'actors');
    return (r.actors ?? []).map(actorEntryFromWire);
  }

  /** The node table (dead nodes included). */
  async listNodes(): Promise<tsray.v1.INodeInfo[]> {
    return (await this.expect({ listNodes: {} }, 'nodes')).nodes ?? [];
  }

  /** Store `value` under `key`; false when the key existed and `overwrite` is false. */
  kvPut(key: string, value: Uint8Array, overwrite: boolean, timeoutMs?: number): Promise<boolean> {
    return this.expect({ kvPut: { key, value, overwrite } }, 'added', timeoutMs);
  }

  /** The value under `key`, undefined when there is none. */
  async kvGet(key: string, timeoutMs?: number): Promise<Buffer | undefined> {
    const v = (await this.expect({ kvGet: { key } }, 'value', timeoutMs)).value;
    return v === undefined || v === null ? undefined : Buffer.from(v);
  }

  /** Remove `key`; false when it was not there. */
  kvDel(key: string): Promise<boolean> {
    return this.expect({ kvDel: { key } }, 'deleted');
  }

  /** Keys starting with `prefix`. */
  async kvKeys(prefix: string): Promise<string[]> {
    return (await this.expect({ kvKeys: { key: prefix } }, 'keys')).keys ?? [];
  }

  /** Every alive node's state rows of `what` (`tasks`, `objects`, `actors`, `placement_groups`, `demand`, `all`). */
  async gatherState(what: string): Promise<StateRows[]> {
    const docs = (await this.expect({ stateGather: { what } }, 'state')).json ?? [];
    return docs.map(parseStateRows);
  }

  /** A driver left this node: its job ends on every node. */
  async endJob(jobId: string): Promise<void> {
    await this.expect({ jobEnd: { jobId } }, 'ok');
  }

  /** The head's jobs (empty when the head runs no jobs API). */
  async listJobs(): Promise<unknown[]> {
    const doc = (await this.expect({ listJobs: {} }, 'state')).json?.[0];
    const rows: unknown = doc ? JSON.parse(doc) : [];
    return Array.isArray(rows) ? rows : [];
  }

  /** Send `call`; its error reply is thrown, a result of another kind is a protocol error. */
  private async expect<K extends GcsResultKind>(call: GcsCall, kind: K, timeoutMs?: number): Promise<NonNullable<tsray.v1.IGcsResponse[K]>> {
    const r = await this.transport(call, timeoutMs);
    if (r.error) throw new GcsCallError(r.error.code ?? tsray.v1.ErrorCode.ERROR_CODE_UNSPECIFIED, r.error.message ?? 'the control call failed');
    const v = r[kind];
    if (v === undefined || v === null) throw new GcsCallError(tsray.v1.ErrorCode.ERROR_CODE_MALFORMED, `the answer to ${Object.keys(call)[0]} has no ${kind}`);
    return v as NonNullable<tsray.v1.IGcsResponse[K]>;
  }
}

/** One node's state document: an object whose values are row lists (anything else counts as no rows). */
export function parseStateRows(json: string): StateRows {
  const doc: unknown = JSON.parse(json);
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return {};
  return Object.fromEntries(Object.entries(doc).filter(([, v]) => Array.isArray(v))) as StateRows;
}
