"""Ray's placement groups (``ray.util.placement_group``): reserve bundles of resources, all or none.

.. code-block:: python

    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK")
    tsray.get(pg.ready())
    f.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
    remove_placement_group(pg)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._options import RESOURCE_UNIT
from ..protocol import pb
from ..refs import ObjectRef

__all__ = ["PlacementGroup", "placement_group", "remove_placement_group", "STRATEGIES"]

#: Ray's placement strategies.
STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


class PlacementGroup:
    """A placement group: its id and bundles; ``ready()`` is a ref that resolves once all are reserved."""

    def __init__(self, pg_id: str, bundle_specs: list[dict[str, float]]) -> None:
        self.id = pg_id
        self.bundle_specs = bundle_specs

    @property
    def bundle_count(self) -> int:
        """How many bundles the group has."""
        return len(self.bundle_specs)

    def ready(self) -> ObjectRef:
        """A ref whose value (``tsray.get``) is the group's placement once every bundle is reserved."""
        from ..client import _current

        return _current("PlacementGroup.ready()").ref_of(f"{self.id}.ready")

    def wait(self, timeout_seconds: float = 30) -> bool:
        """Whether the group was reserved within ``timeout_seconds``."""
        from ..client import wait

        ready, _ = wait([self.ready()], num_returns=1, timeout=timeout_seconds)
        return len(ready) == 1

    def __repr__(self) -> str:
        return f"PlacementGroup({self.id!r}, {self.bundle_specs})"


def _bundle(b: Any, i: int) -> dict[str, float]:
    if not isinstance(b, Mapping) or not b:
        raise ValueError(f"placement_group(): bundle {i} must be a non-empty dict of resource -> amount, got {b!r}")
    out: dict[str, float] = {}
    for k, v in b.items():
        if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ValueError(f"placement_group(): bundle {i}: {k!r} must map to a number >= 0, got {v!r}")
        out[k] = float(v)
    if not any(out.values()):
        raise ValueError(f"placement_group(): bundle {i} asks for nothing ({b!r})")
    return out


def placement_group(
    bundles: Sequence[Mapping[str, float]], strategy: str = "PACK", name: str = "", lifetime: str | None = None
) -> PlacementGroup:
    """Reserve ``bundles`` with ``strategy`` (PACK, SPREAD, STRICT_PACK, STRICT_SPREAD); returns at once."""
    from ..client import _current

    if isinstance(bundles, Mapping) or not isinstance(bundles, Sequence) or len(bundles) == 0:
        raise ValueError("placement_group(): bundles must be a non-empty list of dicts")
    if strategy not in STRATEGIES:
        raise ValueError(f"placement_group(): strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if lifetime not in (None, "detached"):
        raise ValueError(f"placement_group(): lifetime must be None or 'detached', got {lifetime!r}")
    specs = [_bundle(b, i) for i, b in enumerate(bundles)]
    client = _current("placement_group()")
    pg = PlacementGroup(client.new_id("pg"), specs)
    client.send(
        pb.PlacementGroupRequest(
            placement_group_id=pg.id,
            bundles=[pb.Bundle(resources=[pb.ResourceAmount(name=k, units=round(v * RESOURCE_UNIT)) for k, v in s.items() if v]) for s in specs],
            strategy=strategy,
            name=name,
            detached=lifetime == "detached",
        )
    )
    return pg


def remove_placement_group(pg: PlacementGroup) -> None:
    """Remove the group: the node releases its bundles (the group's ready ref then fails if it was pending)."""
    from ..client import _current

    if not isinstance(pg, PlacementGroup):
        raise TypeError(f"remove_placement_group(): expected a PlacementGroup, got {pg!r}")
    _current("remove_placement_group()").send(pb.PlacementGroupRequest(placement_group_id=pg.id, remove=True))
