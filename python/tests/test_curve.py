"""CURVE keys derived from the cluster token (the same as the TypeScript side's, pinned in
packages/core/test/curve.spec.ts) and a pyzmq client/server pair with them: a member connects, a
client with another token is refused with AuthenticationError."""

import socket
import struct
import threading

import zmq

from tsray._curve import cluster_keys, make_client, make_server, watch_refusals
from tsray.errors import AuthenticationError

TOK_KEYS = {
    "server_public": b"K(v8{(no97m&z[V8NmC5!z4hArgD}5k9-Xzp](/}",
    "server_secret": b"G/zHlQzy5(6N5?Nw].et<*<VJa7h3eofXny/lbz9",
    "member_public": b"El3]fKd%yNgN4E-iC}BvMxK&ZbgI4(s&2Ir1}S$4",
    "member_secret": b"qYp=zQ*)DplhjJ]ldMukDFgO{@Q]Y}}>{XXIBK<}",
}


def test_keys_match_the_typescript_side() -> None:
    assert cluster_keys("tok") == TOK_KEYS
    assert cluster_keys("other")["server_public"] != TOK_KEYS["server_public"]


def test_member_connects_and_another_token_is_refused() -> None:
    ctx = zmq.Context()
    server = ctx.socket(zmq.ROUTER)
    make_server(server, "tok")
    port = server.bind_to_random_port("tcp://127.0.0.1")
    endpoint = f"tcp://127.0.0.1:{port}"
    member = ctx.socket(zmq.DEALER)
    intruder = ctx.socket(zmq.DEALER)
    try:
        make_client(member, endpoint, "tok")
        member.connect(endpoint)
        member.send(b"hello")
        assert server.poll(10_000)
        assert server.recv_multipart()[1] == b"hello"

        make_client(intruder, endpoint, "another-token")
        wait = watch_refusals(intruder)
        intruder.connect(endpoint)
        intruder.send(b"let me in")
        try:
            wait(10.0)
            raise AssertionError("the intruder was not refused")
        except AuthenticationError as e:
            assert "wrong cluster token" in str(e)
        assert not server.poll(200)
    finally:
        for s in (server, member, intruder):
            s.close(0)
        ctx.term()


def test_a_plain_client_whose_handshakes_fail_is_told_the_sides_differ() -> None:
    # A server that resets every connection: ZeroMQ reports handshake failures that are not the
    # protocol error, as when a CURVE server drops a plain client before it reads the greeting.
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def reset_all() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    resetter = threading.Thread(target=reset_all, daemon=True)
    resetter.start()
    ctx = zmq.Context()
    plain = ctx.socket(zmq.DEALER)
    try:
        wait = watch_refusals(plain)
        plain.connect(f"tcp://127.0.0.1:{listener.getsockname()[1]}")
        try:
            wait(10.0)
            raise AssertionError("the plain client was not refused")
        except AuthenticationError as e:
            assert "one side runs without CURVE" in str(e)
    finally:
        plain.close(0)
        ctx.term()
        stop.set()
        resetter.join()
        listener.close()
