import { tsray } from './generated/tsray.js';

/**
 * Base class of every error raised by `@tsray/protocol`. `code` is the `tsray.v1.ErrorCode` a
 * receiver puts in its `ErrorReply` when it rejects the message.
 */
export class ProtocolError extends Error {
  /** The `ErrorReply` code that describes this error to the peer. */
  readonly code: tsray.v1.ErrorCode;

  /**
   * @param message - What happened and where to look.
   * @param code - The `ErrorReply` code for the peer.
   * @param options - Standard error options (`cause`).
   */
  constructor(message: string, code: tsray.v1.ErrorCode, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * The peer's envelope carries a different `version` than this side's `PROTOCOL_VERSION`.
 * Both sides must run the same tsray release (TypeScript packages and the Python `tsray` package).
 */
export class ProtocolVersionError extends ProtocolError {
  /** The version the peer wrote into its envelope (0 when it wrote none). */
  readonly peerVersion: number;
  /** This side's `PROTOCOL_VERSION`. */
  readonly localVersion: number;

  /**
   * @param peerVersion - The version found in the envelope.
   * @param localVersion - This side's `PROTOCOL_VERSION`.
   */
  constructor(peerVersion: number, localVersion: number) {
    super(`peer speaks protocol version ${peerVersion}, this is ${localVersion}`, tsray.v1.ErrorCode.ERROR_CODE_VERSION_MISMATCH);
    this.peerVersion = peerVersion;
    this.localVersion = localVersion;
  }
}

/**
 * A message could not be decoded: no frames, a truncated or corrupt envelope, or a `Payload` that
 * points outside the frames that came with it.
 */
export class MalformedMessageError extends ProtocolError {
  /**
   * @param message - What was wrong.
   * @param options - Standard error options (`cause`: the decoder's own error).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, tsray.v1.ErrorCode.ERROR_CODE_MALFORMED, options);
  }
}

/** A frame of a received message is larger than the receiver's `maxFrameBytes`. */
export class MessageTooLargeError extends ProtocolError {
  /** Index of the offending frame in the received message (0 = the envelope). */
  readonly frameIndex: number;
  /** Its size in bytes. */
  readonly size: number;
  /** The limit it exceeded. */
  readonly limit: number;

  /**
   * @param frameIndex - Index of the frame (0 = the envelope).
   * @param size - Its size in bytes.
   * @param limit - The limit in bytes.
   */
  constructor(frameIndex: number, size: number, limit: number) {
    super(
      `frame ${frameIndex} of the message is ${size} bytes, over the limit of ${limit} bytes ` +
        '(decodeMessage maxFrameBytes); large values belong in the shared-memory arena',
      tsray.v1.ErrorCode.ERROR_CODE_TOO_LARGE,
    );
    this.frameIndex = frameIndex;
    this.size = size;
    this.limit = limit;
  }
}

/**
 * The envelope decoded but carries no message this side knows (its `body` oneof is empty): the peer
 * sent a message type added in a newer release, or an empty envelope.
 */
export class UnknownMessageError extends ProtocolError {
  /** @param detail - What was found instead of a known body. */
  constructor(detail: string) {
    super(`envelope carries no known message (${detail})`, tsray.v1.ErrorCode.ERROR_CODE_UNKNOWN_MESSAGE);
  }
}

/**
 * `encodeMessage` was called with a body that does not set exactly one known message
 * (e.g. `{}` or `{ executeTasks, taskResults }`). A programming error on the sending side.
 */
export class InvalidMessageBodyError extends ProtocolError {
  /** @param detail - What the body contained. */
  constructor(detail: string) {
    super(`encodeMessage needs a body with exactly one message field set, got ${detail}`, tsray.v1.ErrorCode.ERROR_CODE_MALFORMED);
  }
}
