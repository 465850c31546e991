import { tsray } from './generated/tsray.js';
import { InvalidMessageBodyError, MalformedMessageError, MessageTooLargeError, ProtocolVersionError, UnknownMessageError } from './errors.js';

/**
 * The wire protocol version this build speaks. Every envelope carries it; a receiver rejects an
 * envelope with another version with {@link ProtocolVersionError}. Bump it on any change that an
 * older peer would misread (the Python package's `tsray.protocol.PROTOCOL_VERSION` must match).
 */
export const PROTOCOL_VERSION = 1;

/** Default {@link DecodeOptions.maxFrameBytes}: 256 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 256 * 1024 * 1024;

/** Name of a message field of the envelope's `body` oneof (`"executeTasks"`, `"taskResults"`, ...). */
export type BodyKind = NonNullable<tsray.v1.Envelope['body']>;

/**
 * Every field name of the envelope's `body` oneof, in proto field-number order.
 * (A test checks it against the .proto, so a new message cannot be forgotten here.)
 */
export const BODY_KINDS = [
  'registerWorker',
  'workerAccepted',
  'executeTasks',
  'taskResults',
  'submitTasks',
  'subscribeObjects',
  'objectsReady',
  'putObjects',
  'allocRequest',
  'allocReply',
  'refUpdates',
  'cancelTask',
  'generatorItems',
  'shutdown',
  'error',
  'cancelRequest',
  'workerBlocked',
  'getActorRequest',
  'getActorReply',
  'killActor',
  'heartbeat',
  'placementGroupRequest',
  'objectChunk',
  'objectLocations',
  'pullObject',
  'pullFailed',
  'dataPlaneOpen',
  'dataPlaneOpened',
  'generateRequest',
  'generateDeltas',
  'generateError',
  'abortGenerate',
  'engineStatsRequest',
  'engineStats',
  'registerNode',
  'nodeHeartbeat',
  'nodeTable',
  'gcsRequest',
  'gcsResponse',
] as const satisfies readonly BodyKind[];

// Compile-time check that BODY_KINDS lists every member of the oneof.
type MissingKinds = Exclude<BodyKind, (typeof BODY_KINDS)[number]>;
const _allKindsListed: [MissingKinds] extends [never] ? true : MissingKinds = true;
void _allKindsListed;

/**
 * The body of a message: an object that sets exactly one field of the envelope's `body` oneof,
 * e.g. `{ executeTasks: { tasks } }`. Nested messages are plain objects; 64-bit fields are numbers.
 */
export type EnvelopeBody = {
  [K in BodyKind]: { [P in K]: NonNullable<tsray.v1.Envelope.$Properties[P]> };
}[BodyKind];

/** Options of {@link decodeMessage}. */
export interface DecodeOptions {
  /** Largest accepted frame (envelope or payload), in bytes. Default {@link DEFAULT_MAX_FRAME_BYTES}. */
  maxFrameBytes?: number;
}

/** A received message: the decoded envelope and the payload frames that followed it. */
export interface DecodedMessage {
  /** The decoded envelope; `envelope[kind]` is set. */
  envelope: tsray.v1.Envelope;
  /** Which body field is set (same as `envelope.body`). */
  kind: BodyKind;
  /** The frames after the envelope, as received (no copies); `Payload.frame` indexes this array. */
  payloads: Buffer[];
}

/** Returns a Buffer over the same memory as `bytes` (no copy). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Encodes a message as ZeroMQ frames: frame 0 is the `tsray.v1.Envelope` (with
 * `version = PROTOCOL_VERSION` and `body` set), followed by `payloads` as they are (no copies).
 * Bulk bytes go in `payloads` and are referenced from the message by `Payload` descriptors
 * (see {@link PayloadWriter}), never copied into the protobuf message.
 *
 * @param body - An object that sets exactly one body field, e.g. `{ taskResults: { results } }`.
 * @param payloads - Payload frames to send after the envelope.
 * @returns The frames to send (after the ROUTER identity frame, where there is one).
 * @throws {@link InvalidMessageBodyError} when `body` sets no or several known body fields.
 */
export function encodeMessage(body: EnvelopeBody, payloads?: readonly Uint8Array[]): Buffer[] {
  let kind: BodyKind | undefined;
  const b = body as Partial<Record<BodyKind, unknown>>;
  for (const k of BODY_KINDS) {
    if (b[k] != null) {
      if (kind !== undefined) throw new InvalidMessageBodyError(`both ${kind} and ${k}`);
      kind = k;
    }
  }
  if (kind === undefined) {
    throw new InvalidMessageBodyError(`no known field (keys: ${JSON.stringify(Object.keys(body ?? {}))})`);
  }
  const envelope: tsray.v1.Envelope.$Properties = { version: PROTOCOL_VERSION, [kind]: b[kind] };
  const frames: Buffer[] = [asBuffer(tsray.v1.Envelope.encode(envelope).finish())];
  if (payloads) for (const p of payloads) frames.push(asBuffer(p));
  return frames;
}

/**
 * Reads the `version` field when it is the first field of an encoded envelope (as every encoder
 * writes it), so that a peer of another version is reported as such even when the rest of its
 * envelope does not parse. Returns undefined when the frame does not start with field 1.
 */
function peekVersion(frame: Uint8Array): number | undefined {
  if (frame.length < 2 || frame[0] !== 0x08) return undefined;
  let value = 0;
  for (let i = 1, shift = 0; i < frame.length && i <= 5; i++, shift += 7) {
    const byte = frame[i]!;
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return value;
  }
  return undefined;
}

/**
 * Decodes the frames of a received message (without the ROUTER identity frame).
 *
 * @param frames - Frame 0 is the envelope, the rest are payload frames (kept, not copied).
 * @param opts - Limits; see {@link DecodeOptions}.
 * @returns The envelope, which body field it sets, and the payload frames.
 * @throws {@link MessageTooLargeError} when a frame is over `maxFrameBytes`.
 * @throws {@link MalformedMessageError} when there is no frame or the envelope does not parse.
 * @throws {@link ProtocolVersionError} when the envelope's version is not `PROTOCOL_VERSION`.
 * @throws {@link UnknownMessageError} when the envelope sets no body field this side knows.
 */
export function decodeMessage(frames: readonly Uint8Array[], opts?: DecodeOptions): DecodedMessage {
  const limit = opts?.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  if (frames.length === 0) throw new MalformedMessageError('message has no frames (expected an envelope frame)');
  for (let i = 0; i < frames.length; i++) {
    const size = frames[i]!.byteLength;
    if (size > limit) throw new MessageTooLargeError(i, size, limit);
  }
  const head = frames[0]!;
  let envelope: tsray.v1.Envelope;
  try {
    envelope = tsray.v1.Envelope.decode(head);
  } catch (err) {
    const peer = peekVersion(head);
    if (peer !== undefined && peer !== PROTOCOL_VERSION) throw new ProtocolVersionError(peer, PROTOCOL_VERSION);
    throw new MalformedMessageError(`envelope frame (${head.byteLength} bytes) does not decode as tsray.v1.Envelope: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const version = envelope.version ?? 0;
  if (version !== PROTOCOL_VERSION) throw new ProtocolVersionError(version, PROTOCOL_VERSION);
  const kind = envelope.body;
  if (kind === undefined) {
    throw new UnknownMessageError('empty body oneof; the peer may be sending a message type this release does not know');
  }
  const payloads: Buffer[] = new Array(frames.length - 1);
  for (let i = 1; i < frames.length; i++) payloads[i - 1] = asBuffer(frames[i]!);
  return { envelope, kind, payloads };
}
