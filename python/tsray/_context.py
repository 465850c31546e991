"""What a task or actor can ask about where it runs (Ray's ``get_gpu_ids``)."""

from __future__ import annotations

import os

__all__ = ["get_gpu_ids"]


def get_gpu_ids() -> list[int | str]:
    """The GPUs given to this task or actor (its ``CUDA_VISIBLE_DEVICES``, which the node sets from
    ``num_gpus``), as Ray's ``ray.get_gpu_ids()``; ``[]`` in a driver without that variable."""
    ids: list[int | str] = []
    for part in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(","):
        part = part.strip()
        if part:
            ids.append(int(part) if part.isdigit() else part)
    return ids
