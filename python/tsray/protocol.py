"""tsray wire framing, the Python mirror of ``@tsray/protocol`` (packages/protocol/src/framing.ts).

Every ZeroMQ message is ``[Envelope, payload frame 0, payload frame 1, ...]`` (after the ROUTER
identity frame where there is one). The envelope carries ``version`` (must equal
:data:`PROTOCOL_VERSION`) and exactly one message of its ``body`` oneof. Bulk bytes never travel
inside a protobuf message: a ``Payload`` names a slice ``(frame, offset, length)`` of the payload
frames that follow the envelope.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypedDict, Union

from google.protobuf.message import DecodeError, Message

from ._proto import tsray_pb2 as pb

__all__ = [
    "PROTOCOL_VERSION",
    "DEFAULT_MAX_FRAME_BYTES",
    "BODY_KINDS",
    "Buffer",
    "DecodedMessage",
    "ProtocolError",
    "ProtocolVersionError",
    "MalformedMessageError",
    "MessageTooLargeError",
    "UnknownMessageError",
    "InvalidMessageBodyError",
    "encode_message",
    "decode_message",
    "payload_bytes",
    "PayloadWriter",
    "pb",
]

#: The wire protocol version this side speaks; must equal the TypeScript PROTOCOL_VERSION.
PROTOCOL_VERSION = 1

#: Default ``max_frame_bytes`` of :func:`decode_message`: 256 MiB (same as TypeScript).
DEFAULT_MAX_FRAME_BYTES = 256 * 1024 * 1024

_BODY_ONEOF = pb.Envelope.DESCRIPTOR.oneofs_by_name["body"]

#: Field names of the envelope's ``body`` oneof (snake_case), in field-number order.
BODY_KINDS: tuple[str, ...] = tuple(f.name for f in sorted(_BODY_ONEOF.fields, key=lambda f: f.number))

# Message type full name -> envelope field name (each body message type appears once).
_KIND_BY_TYPE = {f.message_type.full_name: f.name for f in _BODY_ONEOF.fields}

#: Anything that exposes bytes through the buffer protocol (bytes, bytearray, memoryview, zmq.Frame, numpy arrays).
Buffer = Union[bytes, bytearray, memoryview]


class ProtocolError(Exception):
    """Base of every protocol error; ``code`` is the ``ErrorReply`` code to send to the peer."""

    code: int = pb.ERROR_CODE_UNSPECIFIED


class ProtocolVersionError(ProtocolError):
    """The peer's envelope carries another protocol version than :data:`PROTOCOL_VERSION`.

    Both sides must run the same tsray release (the TypeScript packages and this package).
    """

    code = pb.ERROR_CODE_VERSION_MISMATCH

    def __init__(self, peer_version: int, local_version: int = PROTOCOL_VERSION) -> None:
        super().__init__(f"peer speaks protocol version {peer_version}, this is {local_version}")
        self.peer_version = peer_version
        self.local_version = local_version


class MalformedMessageError(ProtocolError):
    """No frames, an envelope that does not parse, or a Payload outside its frames."""

    code = pb.ERROR_CODE_MALFORMED


class MessageTooLargeError(ProtocolError):
    """A frame is larger than ``max_frame_bytes``."""

    code = pb.ERROR_CODE_TOO_LARGE

    def __init__(self, frame_index: int, size: int, limit: int) -> None:
        super().__init__(
            f"frame {frame_index} of the message is {size} bytes, over the limit of {limit} bytes "
            "(decode_message max_frame_bytes); large values belong in the shared-memory arena"
        )
        self.frame_index = frame_index
        self.size = size
        self.limit = limit


class UnknownMessageError(ProtocolError):
    """The envelope sets no body field this side knows (empty oneof, or a newer message type)."""

    code = pb.ERROR_CODE_UNKNOWN_MESSAGE

    def __init__(self, detail: str) -> None:
        super().__init__(f"envelope carries no known message ({detail})")


class InvalidMessageBodyError(ProtocolError):
    """:func:`encode_message` got something that is not one of the envelope's body messages."""

    code = pb.ERROR_CODE_MALFORMED


@dataclass
class DecodedMessage:
    """A received message: the envelope, which body field it sets, and the payload frames."""

    envelope: pb.Envelope
    kind: str
    payloads: list[Buffer] = field(default_factory=list)

    @property
    def body(self) -> Message:
        """The message the envelope carries (``envelope.<kind>``)."""
        msg: Message = getattr(self.envelope, self.kind)
        return msg


def encode_message(body: Message, payloads: Sequence[Buffer] = ()) -> list[Buffer]:
    """Encode a message as ZeroMQ frames: ``[Envelope(version, body), *payloads]``.

    ``body`` is one of the envelope's body messages (``pb.ExecuteTasks(...)``, ``pb.Shutdown(...)``,
    ...), or an ``Envelope`` whose body is set (its version is overwritten). Payload frames are
    passed through as they are (no copies).
    """
    if isinstance(body, pb.Envelope):
        env = pb.Envelope()
        env.CopyFrom(body)
        if env.WhichOneof("body") is None:
            raise InvalidMessageBodyError("encode_message needs an Envelope with its body set")
    else:
        kind = _KIND_BY_TYPE.get(body.DESCRIPTOR.full_name) if isinstance(body, Message) else None
        if kind is None:
            raise InvalidMessageBodyError(
                f"encode_message needs one of the envelope's body messages, got {type(body).__name__}"
            )
        env = pb.Envelope()
        getattr(env, kind).CopyFrom(body)
    env.version = PROTOCOL_VERSION
    return [env.SerializeToString(), *payloads]


def _peek_version(frame: bytes) -> int | None:
    """Version from a leading field 1 varint (every encoder writes it first), else None."""
    if len(frame) < 2 or frame[0] != 0x08:
        return None
    value = 0
    for i in range(1, min(len(frame), 6)):
        byte = frame[i]
        value |= (byte & 0x7F) << (7 * (i - 1))
        if not byte & 0x80:
            return value
    return None


def decode_message(frames: Sequence[Buffer], max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> DecodedMessage:
    """Decode the frames of a received message (without the ROUTER identity frame).

    Raises :class:`MessageTooLargeError` when a frame exceeds ``max_frame_bytes``,
    :class:`MalformedMessageError` when there is no frame or the envelope does not parse,
    :class:`ProtocolVersionError` on a version mismatch, and :class:`UnknownMessageError` when the
    envelope carries no known body.
    """
    if len(frames) == 0:
        raise MalformedMessageError("message has no frames (expected an envelope frame)")
    for i, f in enumerate(frames):
        size = memoryview(f).nbytes
        if size > max_frame_bytes:
            raise MessageTooLargeError(i, size, max_frame_bytes)
    head = frames[0] if isinstance(frames[0], bytes) else bytes(frames[0])
    env = pb.Envelope()
    try:
        env.ParseFromString(head)
    except DecodeError as e:
        peer = _peek_version(head)
        if peer is not None and peer != PROTOCOL_VERSION:
            raise ProtocolVersionError(peer) from e
        raise MalformedMessageError(
            f"envelope frame ({len(head)} bytes) does not decode as tsray.v1.Envelope: {e}"
        ) from e
    if env.version != PROTOCOL_VERSION:
        raise ProtocolVersionError(env.version)
    kind = env.WhichOneof("body")
    if kind is None:
        raise UnknownMessageError(
            "empty body oneof; the peer may be sending a message type this release does not know"
        )
    return DecodedMessage(envelope=env, kind=kind, payloads=list(frames[1:]))


def payload_bytes(payload: pb.Payload, frames: Sequence[Buffer]) -> memoryview:
    """The bytes a ``Payload`` names, as a memoryview of the payload frame (no copy)."""
    if payload.frame >= len(frames):
        raise MalformedMessageError(
            f"payload names frame {payload.frame}, but the message has {len(frames)} payload frames"
        )
    view = memoryview(frames[payload.frame]).cast("B")
    end = payload.offset + payload.length
    if end > view.nbytes:
        raise MalformedMessageError(
            f"payload [{payload.offset}, {end}) is outside payload frame {payload.frame} ({view.nbytes} bytes)"
        )
    return view[payload.offset : end]


class PayloadWriter:
    """Lays out the payloads of one message: small ones packed into a shared frame, big ones
    (``>= own_frame_bytes``, default 64 KiB) as frames of their own (no copy). Mirrors the
    TypeScript ``PayloadWriter``.
    """

    def __init__(self, own_frame_bytes: int = 64 * 1024, max_pack_bytes: int = 1024 * 1024) -> None:
        self._own = own_frame_bytes
        self._max_pack = max_pack_bytes
        self._frames: list[Buffer | list[Buffer]] = []
        self._pack: list[Buffer] | None = None
        self._pack_index = -1
        self._pack_size = 0

    def add(self, data: Buffer) -> pb.Payload:
        """Add one payload; returns its descriptor. ``data`` is kept by reference until :meth:`finish`."""
        length = memoryview(data).nbytes
        if length >= self._own:
            self._frames.append(data)
            return pb.Payload(frame=len(self._frames) - 1, offset=0, length=length)
        if self._pack is None or (self._pack_size + length > self._max_pack and self._pack_size > 0):
            self._pack = []
            self._pack_size = 0
            self._pack_index = len(self._frames)
            self._frames.append(self._pack)
        offset = self._pack_size
        self._pack.append(data)
        self._pack_size += length
        return pb.Payload(frame=self._pack_index, offset=offset, length=length)

    @property
    def frame_count(self) -> int:
        """Number of frames :meth:`finish` will return."""
        return len(self._frames)

    def finish(self) -> list[Buffer]:
        """Return the payload frames in descriptor order and reset the writer."""
        out: list[Buffer] = []
        for f in self._frames:
            if isinstance(f, list):
                out.append(f[0] if len(f) == 1 else b"".join(f))
            else:
                out.append(f)
        self._frames = []
        self._pack = None
        self._pack_index = -1
        self._pack_size = 0
        return out


class TokenProof(TypedDict, total=False):
    """The ``auth_*`` fields of a ``RegisterWorker`` (or entry request) that prove the cluster token.

    Not total: a connection without a token sends none of them (callers pass ``{}``).
    """

    auth_proof: bytes
    auth_time: int
    auth_nonce: str


#: The audience of token proofs for the head's GCS (a node's proofs name the node's id).
GCS_AUDIENCE = "gcs"


def token_proof(token: str, conn_id: str, kind: str = "RegisterWorker", audience: str = "") -> TokenProof:
    """Fields proving the cluster token for connection ``conn_id`` without sending it.

    ``HMAC-SHA256(token, "tsray-auth-v2|" + kind + "|" + audience + "|" + id + "|" + time_ms + "|" + nonce)``,
    as the TypeScript side (packages/core/src/auth.ts) checks it: ``kind`` is the message
    (``RegisterWorker``, ``ClusterEntry``, ...), ``audience`` the receiver (a node's id, or
    :data:`GCS_AUDIENCE`), so a proof cannot be replayed to another receiver or as another message; a
    proof is accepted once, within 5 minutes of the receiver's clock.
    """
    import hashlib
    import hmac
    import secrets
    import time

    t = int(time.time() * 1000)
    nonce = secrets.token_hex(12)
    mac = hmac.new(token.encode(), f"tsray-auth-v2|{kind}|{audience}|{conn_id}|{t}|{nonce}".encode(), hashlib.sha256).digest()
    return {"auth_proof": mac, "auth_time": t, "auth_nonce": nonce}
