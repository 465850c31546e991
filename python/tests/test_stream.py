"""The Python side of the node's unix stream socket (tsray._stream; the TypeScript twin is
packages/core/src/stream-frames.ts): messages read back whatever the chunk boundaries, small messages
copied out of a big read, the hello, and a round trip with a unix-socket server speaking the framing."""

import asyncio
import os
import struct
import tempfile

import pytest

from tsray._stream import MAGIC, StreamFrameError, StreamMessageReader, connect, stream_hello, stream_message

MESSAGES = [[b"envelope"], [bytes(range(10)), b"", bytes(300)], [bytes([i % 251 for i in range(40_000)]), b"tail"]]


def _wire(messages: list[list[bytes]]) -> bytes:
    return b"".join(b"".join(bytes(b) for b in stream_message(m)) for m in messages)


def test_reads_every_message_whatever_the_chunk_boundaries() -> None:
    data = _wire(MESSAGES)
    for size in (1, 3, 7, 64, 1000, 16 * 1024, len(data)):
        got: list[list[bytes]] = []
        reader = StreamMessageReader(lambda frames: got.append([bytes(f) for f in frames]))
        for i in range(0, len(data), size):
            reader.push(data[i : i + size])
        assert got == MESSAGES, f"chunks of {size}"


def test_the_same_bytes_as_the_typescript_writer() -> None:
    # u32 frame count, u32 lengths, frames; the hello: magic, u16 length, id.
    assert stream_message([b"ab", b"c"]) == [struct.pack("<III", 2, 2, 1) + b"abc"]
    assert stream_hello("w1") == MAGIC + b"\x02\x00w1"
    big = bytes(20_000)
    out = stream_message([b"env", big])
    assert len(out) == 3 and out[2] is big
    with pytest.raises(StreamFrameError):
        stream_hello("")


def test_a_small_message_of_a_big_read_is_copied() -> None:
    small = stream_message([b"small"])[0]
    big = b"".join(bytes(b) for b in stream_message([bytes(60_000)]))
    chunk = bytes(small) + big
    got: list[list[memoryview]] = []
    StreamMessageReader(got.append).push(chunk)
    assert bytes(got[0][0]) == b"small" and got[0][0].obj is not chunk
    assert got[1][0].obj is chunk and len(got[1][0]) == 60_000
    with pytest.raises(StreamFrameError):
        StreamMessageReader(got.append).push(b"\x00\x00\x00\x00")


def test_round_trip_with_a_server() -> None:
    async def main() -> None:
        path = os.path.join(tempfile.mkdtemp(), "s.wsock")
        seen: list[bytes] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            hello = await reader.readexactly(6)
            seen.append(await reader.readexactly(struct.unpack("<H", hello[4:])[0]))
            head = await reader.readexactly(8)
            n = struct.unpack("<I", head[4:])[0]
            body = await reader.readexactly(n)
            writer.writelines(stream_message([body[::-1]]))
            await writer.drain()
            writer.close()

        server = await asyncio.start_unix_server(serve, path)
        replies: asyncio.Queue[bytes] = asyncio.Queue()
        lost = asyncio.Event()
        client = await connect(path, "w7", lambda frames: replies.put_nowait(bytes(frames[0])), lost.set)
        client.send([b"hello"])
        assert await asyncio.wait_for(replies.get(), 10) == b"olleh"
        assert seen == [b"w7"]
        await asyncio.wait_for(lost.wait(), 10)  # the server closed: the client is told
        server.close()
        await server.wait_closed()

    asyncio.run(main())
