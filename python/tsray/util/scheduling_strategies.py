"""Ray's scheduling strategy classes (``ray.util.scheduling_strategies``), for ``scheduling_strategy=``.

``"DEFAULT"`` and ``"SPREAD"`` are plain strings, as in Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .placement_group import PlacementGroup

__all__ = ["PlacementGroupSchedulingStrategy", "NodeAffinitySchedulingStrategy"]


class PlacementGroupSchedulingStrategy:
    """Run a task or actor in a bundle of a placement group (``-1``: any bundle with room)."""

    def __init__(
        self,
        placement_group: PlacementGroup,
        placement_group_bundle_index: int = -1,
        placement_group_capture_child_tasks: bool | None = None,
    ) -> None:
        from .placement_group import PlacementGroup

        if not isinstance(placement_group, PlacementGroup):
            raise TypeError(f"PlacementGroupSchedulingStrategy: placement_group must be a PlacementGroup, got {placement_group!r}")
        n = len(placement_group.bundle_specs)
        if isinstance(placement_group_bundle_index, bool) or not isinstance(placement_group_bundle_index, int):
            raise TypeError("PlacementGroupSchedulingStrategy: placement_group_bundle_index must be an int")
        if not -1 <= placement_group_bundle_index < n:
            raise ValueError(
                f"PlacementGroupSchedulingStrategy: placement_group_bundle_index {placement_group_bundle_index} is out of range "
                f"(the group has {n} bundles; -1 = any)"
            )
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks


class NodeAffinitySchedulingStrategy:
    """Run on the node ``node_id`` (``soft``: elsewhere when it cannot)."""

    def __init__(self, node_id: str, soft: bool) -> None:
        if not isinstance(node_id, str) or not node_id:
            raise ValueError("NodeAffinitySchedulingStrategy: node_id must be a non-empty node id string")
        self.node_id = node_id
        self.soft = bool(soft)
