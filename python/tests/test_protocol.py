"""Framing behaviour of tsray.protocol (mirrors packages/protocol/test/framing.spec.ts)."""

from __future__ import annotations

import pytest

import tsray
from tsray.protocol import (
    BODY_KINDS,
    DEFAULT_MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    InvalidMessageBodyError,
    MalformedMessageError,
    MessageTooLargeError,
    PayloadWriter,
    ProtocolError,
    ProtocolVersionError,
    UnknownMessageError,
    decode_message,
    encode_message,
    payload_bytes,
    pb,
)


def test_version_constant_matches_typescript() -> None:
    assert PROTOCOL_VERSION == 1
    assert tsray.PROTOCOL_VERSION == PROTOCOL_VERSION
    assert DEFAULT_MAX_FRAME_BYTES == 256 * 1024 * 1024


def test_body_kinds_follow_field_order() -> None:
    assert BODY_KINDS[0] == "register_worker"
    assert "execute_tasks" in BODY_KINDS and "cancel_request" in BODY_KINDS
    assert len(BODY_KINDS) == len(pb.Envelope.DESCRIPTOR.oneofs_by_name["body"].fields)


def test_round_trip_with_payloads_uncopied() -> None:
    big = bytearray(100_000)
    frames = encode_message(
        pb.PutObjects(objects=[pb.ObjectData(object_id="o1", inline=pb.Payload(frame=0, offset=1, length=2), size=2**40)]),
        [b"\x01\x02\x03", big],
    )
    assert len(frames) == 3 and frames[2] is big
    msg = decode_message(frames)
    assert msg.kind == "put_objects"
    assert msg.envelope.version == PROTOCOL_VERSION
    obj = msg.body.objects[0]  # type: ignore[attr-defined]
    assert obj.size == 2**40
    assert bytes(payload_bytes(obj.inline, msg.payloads)) == b"\x02\x03"
    assert msg.payloads[1] is big


def test_encode_accepts_an_envelope_and_sets_the_version() -> None:
    frames = encode_message(pb.Envelope(version=9, shutdown=pb.Shutdown(reason="bye")))
    assert decode_message(frames).envelope.version == PROTOCOL_VERSION


def test_encode_rejects_non_body_messages() -> None:
    with pytest.raises(InvalidMessageBodyError):
        encode_message(pb.Payload(frame=1))
    with pytest.raises(InvalidMessageBodyError):
        encode_message(pb.Envelope(version=1))


def test_version_mismatch_has_the_exact_message() -> None:
    frame = pb.Envelope(version=2, shutdown=pb.Shutdown(reason="x")).SerializeToString()
    with pytest.raises(ProtocolVersionError) as info:
        decode_message([frame])
    assert str(info.value) == "peer speaks protocol version 2, this is 1"
    assert info.value.peer_version == 2
    assert info.value.code == pb.ERROR_CODE_VERSION_MISMATCH
    assert isinstance(info.value, ProtocolError)


def test_missing_version_is_version_0() -> None:
    frame = pb.Envelope(shutdown=pb.Shutdown(reason="x")).SerializeToString()
    with pytest.raises(ProtocolVersionError, match=r"^peer speaks protocol version 0, this is 1$"):
        decode_message([frame])


def test_newer_peer_with_unparsable_rest_is_a_version_error() -> None:
    frame = pb.Envelope(version=7).SerializeToString() + b"\xff\xff\xff"
    with pytest.raises(ProtocolVersionError, match="peer speaks protocol version 7, this is 1"):
        decode_message([frame])


def test_truncated_envelope_is_malformed() -> None:
    head = encode_message(pb.ExecuteTasks(tasks=[pb.TaskExecution(task_id="task-1", return_ids=["r1", "r2"])]))[0]
    for cut in (1, 3, len(head) - 1):
        with pytest.raises(MalformedMessageError) as info:
            decode_message([head[:cut]])
        assert info.value.code == pb.ERROR_CODE_MALFORMED


def test_no_frames_is_malformed() -> None:
    with pytest.raises(MalformedMessageError):
        decode_message([])


def test_frames_over_the_limit() -> None:
    frames = encode_message(pb.Shutdown(reason="bye"), [bytes(10), bytes(64)])
    with pytest.raises(MessageTooLargeError) as info:
        decode_message(frames, max_frame_bytes=32)
    assert (info.value.frame_index, info.value.size, info.value.limit) == (2, 64, 32)
    decode_message(frames, max_frame_bytes=64)


def test_empty_or_unknown_body() -> None:
    empty = pb.Envelope(version=PROTOCOL_VERSION).SerializeToString()
    with pytest.raises(UnknownMessageError):
        decode_message([empty])
    future = empty + bytes([0x9A, 0x06, 0x02, 0x08, 0x01])  # field 99 from a newer release
    with pytest.raises(UnknownMessageError) as info:
        decode_message([future])
    assert info.value.code == pb.ERROR_CODE_UNKNOWN_MESSAGE


def test_payload_bytes_is_a_view_and_checks_bounds() -> None:
    frame = bytearray(b"hello world")
    view = payload_bytes(pb.Payload(frame=0, offset=6, length=5), [frame])
    frame[6:7] = b"W"
    assert bytes(view) == b"World"
    with pytest.raises(MalformedMessageError):
        payload_bytes(pb.Payload(frame=1, length=1), [bytes(4)])
    with pytest.raises(MalformedMessageError, match=r"outside payload frame 0 \(4 bytes\)"):
        payload_bytes(pb.Payload(frame=0, offset=3, length=2), [bytes(4)])


def test_payload_writer_packs_small_and_passes_big_through() -> None:
    w = PayloadWriter()
    smalls = [f"payload-{i}".encode() for i in range(1000)]
    big = bytes(64 * 1024)
    refs = [w.add(b) for b in smalls[:500]]
    big_ref = w.add(big)
    refs += [w.add(b) for b in smalls[500:]]
    assert w.frame_count == 2
    assert (big_ref.frame, big_ref.offset, big_ref.length) == (1, 0, len(big))
    frames = w.finish()
    assert frames[1] is big and w.frame_count == 0
    tasks = [
        pb.TaskExecution(task_id=f"t{i}", args=[pb.ObjectData(object_id=f"o{i}", inline=r)]) for i, r in enumerate(refs)
    ]
    msg = decode_message(encode_message(pb.ExecuteTasks(tasks=tasks), frames))
    for i, t in enumerate(msg.body.tasks):  # type: ignore[attr-defined]
        assert bytes(payload_bytes(t.args[0].inline, msg.payloads)) == smalls[i]


def test_payload_writer_splits_packs() -> None:
    w = PayloadWriter(own_frame_bytes=100, max_pack_bytes=10)
    refs = [w.add(bytes([1]) * 6), w.add(bytes([2]) * 6), w.add(bytes([3]) * 3), w.add(bytes(100))]
    assert [r.frame for r in refs] == [0, 1, 1, 2]
    frames = w.finish()
    assert [len(f) for f in frames] == [6, 9, 100]
    assert bytes(payload_bytes(refs[2], frames)) == b"\x03\x03\x03"
