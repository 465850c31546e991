"""Where a Python client driver connects: cluster address resolution (:func:`resolve_address`).

``'auto'`` reads ``$TMPDIR/tsray-<uid>/current.json`` (written by the TypeScript driver that started a
cluster on this machine); ``host:port`` of a cluster's head attaches to this machine's node of that
cluster, or, when there is none, asks the head (GCS) for its node over TCP, proving the cluster token
(:func:`_cluster_entry`). Used by :class:`tsray.client.Client`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any

import zmq

from ._curve import make_client, watch_refusals
from .errors import AuthenticationError, ConnectionError
from .protocol import GCS_AUDIENCE, decode_message, encode_message, pb, token_proof

__all__ = ["resolve_address"]


def _tmpdir() -> str:
    """The directory Node's ``os.tmpdir()`` returns (where a TypeScript driver writes current.json)."""
    for var in ("TMPDIR", "TMP", "TEMP"):
        v = os.environ.get(var)
        if v:
            return v.rstrip("/") or "/"
    return "/tmp"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def runtime_dir() -> Path:
    """This user's tsray runtime directory, ``$TMPDIR/tsray-<uid>`` (as TypeScript's ``runtimeDir()``)."""
    return Path(_tmpdir()) / f"tsray-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def read_current() -> dict[str, Any] | None:
    """``current.json`` of the runtime directory, read only when the directory is this user's, not a
    link and closed to others (0700), and the file is a regular file of this user: another local user
    who made the directory first cannot point ``address='auto'`` elsewhere."""
    d = runtime_dir()
    try:
        st = os.lstat(d)
        me = os.getuid() if hasattr(os, "getuid") else st.st_uid
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != me or st.st_mode & 0o077:
            return None
        f = d / "current.json"
        fst = os.lstat(f)
        if not stat.S_ISREG(fst.st_mode) or fst.st_uid != me:
            return None
        cur = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return cur if isinstance(cur, dict) else None


def env_token() -> str | None:
    """The cluster token from the environment: ``TSRAY_TOKEN``, else the file ``TSRAY_TOKEN_FILE`` names.

    Job entrypoints get ``TSRAY_TOKEN_FILE`` (the session's 0600 token file) instead of the token itself.
    """
    token = os.environ.get("TSRAY_TOKEN")
    if token:
        return token
    path = os.environ.get("TSRAY_TOKEN_FILE")
    return (Path(path).read_text(encoding="utf-8").strip() or None) if path else None


def _local_token(address: str) -> str | None:
    """The token file of this machine's cluster when ``address`` is its node."""
    cur = read_current() or {}
    try:
        if cur.get("address") == address and cur.get("tokenFile"):  # the node this client attaches to
            return Path(cur["tokenFile"]).read_text(encoding="utf-8").strip()
    except (OSError, ValueError, AttributeError):
        pass
    return None


def _local_node_id(address: str) -> str:
    """The node id of this machine's cluster when ``address`` is its node ("" otherwise)."""
    cur = read_current() or {}
    try:
        if cur.get("address") == address:
            return str(cur.get("nodeId") or "")
    except AttributeError:
        pass
    return ""


def _socket_node_id(address: str) -> str:
    """The node id in a node's ipc address (``ipc://…/<pid>-<nodeId>.sock``), else "" (socket-path.ts)."""
    if not address.startswith("ipc://"):
        return ""
    m = re.fullmatch(r"\d+-([0-9a-zA-Z]+)\.sock", address.rsplit("/", 1)[-1])
    return m.group(1) if m and m.group(1) != "node" else ""


def _cluster_entry(host_port: str, token: str | None, timeout: float | None) -> tuple[str, str]:
    """Ask a cluster's head (GCS) for its nodes, proving the token; the head node's tcp address and id."""
    if not token:
        raise AuthenticationError(f"init(address={host_port!r}): a remote cluster needs its token (token=..., TSRAY_TOKEN)")
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    conn_id = f"entry:{secrets.token_hex(6)}"
    sock.setsockopt(zmq.ROUTING_ID, conn_id.encode())
    sock.setsockopt(zmq.LINGER, 0)
    make_client(sock, f"tcp://{host_port}", token)
    wait_answer = watch_refusals(sock)
    try:
        sock.connect(f"tcp://{host_port}")
        p = token_proof(token, conn_id, "ClusterEntry", GCS_AUDIENCE)
        proof = pb.TokenProof(auth_proof=p["auth_proof"], auth_time=p["auth_time"], auth_nonce=p["auth_nonce"])
        sock.send_multipart(encode_message(pb.GcsRequest(request_id=1, cluster_entry=proof)))
        t = timeout if timeout is not None else float(os.environ.get("TSRAY_CONNECT_TIMEOUT_MS", "10000")) / 1000
        if not wait_answer(t):
            raise ConnectionError(f"init(): no tsray cluster answered at {host_port} within {t:g} s (is it running? is the address right?)")
        msg = decode_message(sock.recv_multipart())
        if msg.kind != "gcs_response":
            raise ConnectionError(f"init(): {host_port} did not answer as a tsray head")
        r = msg.envelope.gcs_response
        if r.HasField("error"):
            if r.error.code == pb.ERROR_CODE_AUTH_FAILED:
                raise AuthenticationError(r.error.message)
            raise ConnectionError(r.error.message)
        nodes = [{"alive": n.alive, "isHead": n.is_head, "address": n.address, "nodeId": n.node_id} for n in r.nodes.nodes]
        alive = [n for n in nodes if n.get("alive")]
        head = next((n for n in alive if n.get("isHead")), alive[0] if alive else None)
        if head is None:
            raise ConnectionError(f"init(): the cluster at {host_port} has no alive node")
        return str(head["address"]), str(head["nodeId"])
    finally:
        sock.close()


def resolve_address(address: str) -> str:
    """``'auto'`` -> the address in ``$TMPDIR/tsray-<uid>/current.json``; ``host:port`` -> ``tcp://host:port``."""
    if address == "auto" and os.environ.get("TSRAY_ADDRESS"):
        # As Ray honours RAY_ADDRESS: an explicit cluster address in the environment wins.
        address = os.environ["TSRAY_ADDRESS"]
    if address == "auto":
        path = runtime_dir() / "current.json"
        cur = read_current()
        if not isinstance(cur, dict) or not cur.get("address") or not _pid_alive(int(cur.get("pid", 0) or 0)):
            raise ConnectionError(
                f"init(address='auto'): no tsray cluster is running on this machine (looked in {path}); "
                "start one with init() in a TypeScript driver, or pass its address"
            )
        return str(cur["address"])
    if address.startswith("ipc://"):
        return address
    if ":" in address:
        # host:port of a cluster's head (GCS): attach to this machine's node of that cluster.
        cur = read_current()
        want = address.removeprefix("tcp://").replace("localhost:", "127.0.0.1:")
        if isinstance(cur, dict) and str(cur.get("gcsAddress", "")).replace("localhost:", "127.0.0.1:") == want and _pid_alive(int(cur.get("pid", 0) or 0)):
            return str(cur["address"])
        # No node of that cluster here: a remote client of the head's node (objects travel in frames).
        return f"remote://{want}"
    raise ConnectionError(f"init(address={address!r}): expected 'auto', 'ipc://...', 'tcp://host:port' or 'host:port'")
