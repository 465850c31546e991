"""ZeroMQ CURVE on tcp connections, with keys derived from the cluster token.

The same derivation as the TypeScript side (``packages/core/src/curve.ts``): HKDF-SHA256 of the
token (salt ``tsray-curve-v1``, info ``server`` / ``member``) is an X25519 secret key; its public
key comes from libzmq. Servers (the GCS, nodes, an engine's data plane bound to tcp) use the server
keypair; clients connect with the member keypair and must know the server's public key, which only
holders of the token can compute. ipc connections stay plain. ``TSRAY_TRANSPORT_CURVE=0`` turns it off.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import zmq
from zmq.utils import z85

_SALT = b"tsray-curve-v1"


def _hkdf(token: str, info: bytes) -> bytes:
    """HKDF-SHA256 (RFC 5869) of ``token``, 32 bytes."""
    prk = hmac.new(_SALT, token.encode(), hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


@lru_cache(maxsize=8)
def cluster_keys(token: str) -> dict[str, bytes]:
    """The cluster's CURVE keys (Z85 bytes): server_public/secret and member_public/secret."""
    keys: dict[str, bytes] = {}
    for role in ("server", "member"):
        secret = z85.encode(_hkdf(token, role.encode()))
        keys[f"{role}_secret"] = secret
        keys[f"{role}_public"] = zmq.curve_public(secret)
    return keys


def curve_on(endpoint: str) -> bool:
    """True for a tcp endpoint while CURVE is on (``TSRAY_TRANSPORT_CURVE``, default on)."""
    flag = os.environ.get("TSRAY_TRANSPORT_CURVE", "").strip().lower()
    return endpoint.startswith("tcp://") and flag not in ("0", "false")


def make_client(sock: Any, endpoint: str, token: str | None) -> None:
    """Make ``sock`` (before it connects to ``endpoint``) a CURVE client of the cluster of ``token``."""
    if not token or not curve_on(endpoint):
        return
    k = cluster_keys(token)
    sock.setsockopt(zmq.CURVE_SERVERKEY, k["server_public"])
    sock.setsockopt(zmq.CURVE_PUBLICKEY, k["member_public"])
    sock.setsockopt(zmq.CURVE_SECRETKEY, k["member_secret"])


def make_server(sock: Any, token: str) -> None:
    """Make ``sock`` (before it binds a tcp endpoint) a CURVE server of the cluster of ``token``."""
    k = cluster_keys(token)
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, k["server_secret"])


#: Failed CURVE handshakes in a row (none succeeded) after which a client gives up: a wrong token.
REFUSALS_BEFORE_GIVING_UP = 3
_REFUSED = "the head refused the connection: wrong cluster token"
_MISMATCH = "the handshake failed: one side runs without CURVE (TSRAY_TRANSPORT_CURVE differs), or it is not a tsray process"

_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


def watch_refusals(sock: Any) -> Callable[[float], bool]:
    """Watch ``sock``'s handshakes (call before it connects); returns ``wait(timeout_s)``.

    ``wait`` is True once a message can be received, False at the timeout, and raises
    :class:`~tsray.errors.AuthenticationError` when the server refused the CURVE handshake
    :data:`REFUSALS_BEFORE_GIVING_UP` times before one succeeded (it has another cluster's keys: the
    server cannot even decrypt the hello, so it cannot say why).
    """
    from zmq.utils.monitor import recv_monitor_message

    from .errors import AuthenticationError

    monitor = sock.get_monitor_socket(_HANDSHAKE_FAILED | zmq.EVENT_HANDSHAKE_SUCCEEDED)

    def wait(timeout: float) -> bool:
        failures, up = 0, False
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        deadline = time.monotonic() + timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                ready = dict(poller.poll(int(left * 1000) + 1))
                if sock in ready:
                    return True
                if monitor in ready:
                    ev = recv_monitor_message(monitor)
                    if ev["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                        up = True
                    elif not up and ev["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                        # One side plain, the other CURVE: ZeroMQ does not reconnect after this.
                        raise AuthenticationError(f"{_REFUSED} ({_MISMATCH})")
                    elif not up and (failures := failures + 1) >= REFUSALS_BEFORE_GIVING_UP:
                        # A plain client refused by a CURVE server may see resets instead of the
                        # protocol error (timing): its own mechanism says which it is.
                        plain = sock.getsockopt(zmq.MECHANISM) == zmq.NULL
                        raise AuthenticationError(f"{_REFUSED} ({_MISMATCH})" if plain else _REFUSED)
            return False
        finally:
            sock.disable_monitor()
            monitor.close(0)

    return wait
