"""What a driver, task or actor can ask about where it runs (Ray's ``get_gpu_ids`` and
``get_runtime_context``)."""

from __future__ import annotations

import os

__all__ = ["get_gpu_ids", "get_runtime_context", "RuntimeContext"]


def get_gpu_ids() -> list[int | str]:
    """The GPUs given to this task or actor (its ``CUDA_VISIBLE_DEVICES``, which the node sets from
    ``num_gpus``), as Ray's ``ray.get_gpu_ids()``; ``[]`` in a driver without that variable."""
    ids: list[int | str] = []
    for part in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(","):
        part = part.strip()
        if part:
            ids.append(int(part) if part.isdigit() else part)
    return ids


class RuntimeContext:
    """Ray's runtime context: the job, node and actor of the calling process."""

    def __init__(self, job_id: str, node_id: str, namespace: str, actor_id: str | None) -> None:
        self.job_id = job_id
        self.node_id = node_id
        self.namespace = namespace
        self._actor_id = actor_id

    def get_job_id(self) -> str:
        """The job of this driver, or of the worker running the caller."""
        return self.job_id

    def get_node_id(self) -> str:
        """The node this process is attached to (a driver) or runs on (a worker)."""
        return self.node_id

    def get_actor_id(self) -> str | None:
        """The actor this process is (None in a driver or a task worker)."""
        return self._actor_id

    def get_gpu_ids(self) -> list[int | str]:
        """As :func:`get_gpu_ids`."""
        return get_gpu_ids()


def get_runtime_context() -> RuntimeContext:
    """The runtime context of the caller (a worker: from its node's environment; a driver: from
    its connection)."""
    from .client import _current
    from .worker.runtime import current_actor_id, current_worker_context

    if current_worker_context() is not None:
        ns = _current("get_runtime_context()").namespace
        return RuntimeContext(os.environ.get("TSRAY_JOB_ID", ""), os.environ.get("TSRAY_NODE_ID", ""), ns, current_actor_id())
    c = _current("get_runtime_context()")
    return RuntimeContext(c.job_id, c.node_id, c.namespace, None)
