/**
 * @module @tsray/protocol
 * The tsray wire protocol: the `tsray.v1` messages generated from `proto/tsray/v1/tsray.proto`
 * (protobufjs static module, 64-bit fields as numbers), and the ZeroMQ framing
 * `[Envelope, payload frame 0, payload frame 1, ...]` with version checking.
 */

/**
 * The generated protobuf namespace: `tsray.v1.Envelope`, `tsray.v1.ExecuteTasks`, ... with static
 * `encode`/`decode`/`fromObject`/`toObject`, and the enums (`tsray.v1.Encoding`, `tsray.v1.ErrorCode`, ...).
 */
export { tsray } from './generated/tsray.js';
export {
  ProtocolError,
  ProtocolVersionError,
  MalformedMessageError,
  MessageTooLargeError,
  UnknownMessageError,
  InvalidMessageBodyError,
} from './errors.js';
export {
  PROTOCOL_VERSION,
  DEFAULT_MAX_FRAME_BYTES,
  BODY_KINDS,
  encodeMessage,
  decodeMessage,
  asBuffer,
  type BodyKind,
  type EnvelopeBody,
  type DecodeOptions,
  type DecodedMessage,
} from './framing.js';
export { payloadBytes, PayloadWriter, type PayloadRef, type PayloadWriterOptions } from './payload.js';
export type { GcsCall, GcsCallKind, GcsResult, GcsResultKind } from './control.js';
