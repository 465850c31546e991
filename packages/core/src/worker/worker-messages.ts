/**
 * What a worker or client driver does with each message from its node: a typed table from message
 * kind to handler (as node/node-messages.ts is for the node). The handlers reach the process's parts
 * through {@link WorkerMessageHost}.
 * @internal
 */
import type { BodyKind, DecodedMessage } from '@tsray/protocol';
import { logger } from '../logger.js';
import type { NodeSession } from './node-session.js';
import type { ObjectClient } from './object-client.js';
import type { TaskExecutor } from './task-executor.js';

/** What the message handlers need from the worker runtime. */
export interface WorkerMessageHost {
  readonly session: NodeSession;
  readonly objects: ObjectClient;
  readonly executor: TaskExecutor;
  /** The node told this process to stop: send what is queued, then exit. */
  exit(): void;
}

/** A handler of one message kind. */
export type WorkerMessageHandler = (w: WorkerMessageHost, m: DecodedMessage) => void;

/** Handlers by message kind; a kind not here is logged and ignored. */
export const WORKER_MESSAGE_HANDLERS: Partial<Record<BodyKind, WorkerMessageHandler>> = {
  workerAccepted: (w, { envelope }) => w.session.onAccepted(envelope.workerAccepted!),
  getActorReply: (w, { envelope }) => w.session.onGetActorReply(envelope.getActorReply!),
  gcsResponse: (w, { envelope }) => w.session.onStateReply(envelope.gcsResponse!),
  executeTasks: (w, { envelope, payloads }) => w.executor.accept(envelope.executeTasks!.tasks ?? [], payloads),
  cancelTask: (w, { envelope }) => w.executor.cancel(envelope.cancelTask!.taskId ?? ''),
  objectChunk: (w, { envelope, payloads }) => w.objects.onChunk(envelope.objectChunk!, payloads[0] ?? Buffer.alloc(0)),
  objectsReady: (w, { envelope, payloads }) => {
    for (const od of envelope.objectsReady!.objects ?? []) w.objects.objectReady(od, payloads);
  },
  allocReply: (w, { envelope }) => w.objects.onAllocReply(envelope.allocReply!),
  shutdown: (w) => w.exit(),
  error: (w, { envelope }) => {
    if (envelope.error && w.session.onError(envelope.error)) return;
    logger().error({ error: envelope.error }, 'node reported a protocol error');
  },
};
