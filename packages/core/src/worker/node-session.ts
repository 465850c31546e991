/**
 * This process's registration with its node: the registerWorker message (with a token proof when the
 * cluster has a token), what the node's acceptance tells (node id, arena, namespace), the client
 * driver's heartbeat and goodbye, and the request/reply calls answered by the node (named actor
 * lookups, state API calls).
 * @internal
 */
import { GcsCallError } from '../cluster/control-plane.js';
import { tsray } from '@tsray/protocol';
import { makeTokenProof } from '../auth.js';
import { config, configuredToken } from '../config.js';
import { AuthenticationError, ConnectionError } from '../errors.js';
import type { NodeChannel } from './node-channel.js';

/** How a process attaches: a worker the node started, or a client driver of a running cluster. */
export interface SessionOptions {
  workerId: string;
  /** 'worker' (executes tasks) or 'driver' (a client driver of a running cluster). */
  mode: 'worker' | 'driver';
  jobId: string;
  namespace?: string;
  token?: string;
  /** A client on another host: no shared memory, large objects travel in chunks. */
  remote?: boolean;
  /** The node this connects to (the audience of its token proof); default `TSRAY_NODE_ID`. */
  nodeId?: string;
}

/** Registration state and the node's replies to this process's requests. */
export class NodeSession {
  /** The node this process is attached to (a client driver learns it when the node accepts it). */
  nodeId: string;
  /** Namespace the node assigned (shown in "actor not found" errors). */
  namespace = '';
  /** Where the node's arena is (client drivers on the same host map it by path). */
  shmPath = '';
  arenaSize = 0;
  private accepted: ((a: tsray.v1.IWorkerAccepted) => void) | undefined;
  private refused: ((e: Error) => void) | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private wasAccepted = false;
  /** Set once the node dropped this client driver (see {@link NodeSession.onError}). */
  dropped: ConnectionError | undefined;
  /** Told once when the node dropped this client driver (the runtime fails what waits). */
  onDropped: ((err: ConnectionError) => void) | undefined;
  private requestSeq = 0;
  private readonly actorRequests = new Map<number, { resolve: (r: tsray.v1.IGetActorReply) => void; reject: (e: Error) => void }>();
  private readonly stateRequests = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(
    private readonly channel: NodeChannel,
    private readonly options: SessionOptions,
  ) {
    this.nodeId = config().nodeId ?? '';
  }

  /** Register with the node; resolves when the node accepted (client drivers await this). */
  register(): Promise<tsray.v1.IWorkerAccepted> {
    const p = new Promise<tsray.v1.IWorkerAccepted>((resolve, reject) => {
      this.accepted = resolve;
      this.refused = reject;
    });
    const { workerId, mode } = this.options;
    const token = this.options.token ?? configuredToken() ?? '';
    // The proof names its receiver: this node's id (a worker's from its node, a driver's from init()).
    const audience = this.options.nodeId ?? config().nodeId ?? '';
    const proof = token ? makeTokenProof(token, { kind: 'RegisterWorker', audience, id: workerId }) : {};
    this.channel.send({
      registerWorker: {
        workerId,
        pid: process.pid,
        language: 'typescript',
        kind: mode,
        namespace: this.options.namespace ?? '',
        jobId: this.options.jobId,
        ...proof,
        ...(this.options.remote ? { remote: true } : {}),
      },
    });
    if (mode === 'driver') {
      let seq = 0;
      this.heartbeat = setInterval(() => this.channel.send({ heartbeat: { seq: ++seq } }), 1000);
      this.heartbeat.unref();
    }
    return p;
  }

  /** The node accepted this process. */
  onAccepted(a: tsray.v1.IWorkerAccepted): void {
    this.shmPath = a.shmPath ?? '';
    this.arenaSize = Number(a.shmSize ?? 0);
    this.namespace = a.namespace ?? '';
    if (this.options.mode === 'driver' && a.nodeId) this.nodeId = a.nodeId;
    this.wasAccepted = true;
    this.accepted?.(a);
    this.refused = undefined;
  }

  /**
   * An error from the node; true when it was handled here: a refused registration (wrong token), or,
   * for a client driver the node had accepted, the node saying it does not know this driver any more
   * (it dropped it: silent past `TSRAY_CLIENT_TIMEOUT_MS`, or the node restarted) — then `onDropped`.
   */
  onError(error: tsray.v1.IErrorReply): boolean {
    if (error.code !== tsray.v1.ErrorCode.ERROR_CODE_AUTH_FAILED) return false;
    if (this.refused) {
      this.refused(new AuthenticationError(error.message ?? 'the cluster refused this connection (wrong or missing token)'));
      this.refused = undefined;
      return true;
    }
    if (this.options.mode !== 'driver' || !this.wasAccepted || this.dropped) return false;
    this.dropped = new ConnectionError(
      `the node ${this.nodeId} dropped this driver (${error.message ?? 'not registered'}): it was silent too long (TSRAY_CLIENT_TIMEOUT_MS) or the node restarted; its work was released. Start the driver again.`,
    );
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const p of [...this.stateRequests.values(), ...this.actorRequests.values()]) p.reject(this.dropped);
    this.stateRequests.clear();
    this.actorRequests.clear();
    this.onDropped?.(this.dropped);
    return true;
  }

  /** Look up a named actor; the reply says where it is or that it is not there. */
  getActor(name: string, namespace: string, flush: () => void): Promise<tsray.v1.IGetActorReply> {
    const requestId = ++this.requestSeq;
    if (this.dropped) return Promise.reject(this.dropped);
    return new Promise((resolve, reject) => {
      this.actorRequests.set(requestId, { resolve, reject });
      flush();
      this.channel.send({ getActorRequest: { requestId, name, namespace } });
    });
  }

  onGetActorReply(r: tsray.v1.IGetActorReply): void {
    const p = this.actorRequests.get(Number(r.requestId));
    if (!p) return;
    this.actorRequests.delete(Number(r.requestId));
    p.resolve(r);
  }

  /** A state API call answered by the node (`nodes`, `actors`, ...). */
  stateCall(method: string): Promise<unknown> {
    if (this.dropped) return Promise.reject(this.dropped);
    const requestId = ++this.requestSeq;
    return new Promise((resolve, reject) => {
      this.stateRequests.set(requestId, { resolve, reject });
      this.channel.send({ gcsRequest: { requestId, stateQuery: { what: method } } });
    });
  }

  onStateReply(r: tsray.v1.IGcsResponse): void {
    const p = this.stateRequests.get(Number(r.requestId));
    if (!p) return;
    this.stateRequests.delete(Number(r.requestId));
    if (r.error) p.reject(new GcsCallError(r.error.code ?? 0, r.error.message ?? 'the state call failed'));
    else p.resolve(r.state?.json?.[0] ? JSON.parse(r.state.json[0]) : null);
  }

  /** A client driver leaves: stop the heartbeat and say goodbye (the node then releases its work). */
  goodbye(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.channel.send({ heartbeat: { seq: 0, goodbye: true } });
  }
}
