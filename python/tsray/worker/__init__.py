"""The Python worker process of tsray (``python -m tsray.worker``, started by a tsray node).

Environment (set by the node): ``TSRAY_WORKER_ID`` (the DEALER routing id), ``TSRAY_NODE_ADDRESS``
(the node's ROUTER, ``ipc://...`` or ``tcp://...``), ``TSRAY_NODE_STREAM`` (the node's unix stream
socket, used instead of the ROUTER when set; see channel.py), ``TSRAY_NODE_ID``, ``TSRAY_JOB_ID``,
``TSRAY_ARENA_FD`` (default 3: the shared-memory arena, inherited), ``TSRAY_ARENA_SIZE`` (bytes),
``CUDA_VISIBLE_DEVICES``. stdin must be a pipe from the node: the worker exits when it closes.
"""

from .runtime import TASK_NAME_MARKER, TaggedStream, WorkerRuntime, main

__all__ = ["TASK_NAME_MARKER", "TaggedStream", "WorkerRuntime", "main"]
