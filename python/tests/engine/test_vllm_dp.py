"""The per-rank engine arguments of a MoE data-parallel group (pure: no vLLM, no GPU)."""

from __future__ import annotations

import socket

import pytest

from tsray.engine.backend import InvalidEngineArgs
from tsray.engine.vllm_dp import DP_ARG_KEYS, build_dp_rank_args, dp_rank_fields, pick_dp_endpoint

EP = {"address": "10.0.0.5", "rpc_port": 13345}


def args(rank: int, size: int = 4, engine_args: dict | None = None, num_gpus: float = 2, gpu_fraction: float = 1.0) -> dict:
    return build_dp_rank_args("/models/moe", engine_args, num_gpus, gpu_fraction, rank=rank, size=size, **EP)


def test_head_is_rank_zero_with_internal_load_balancing() -> None:
    a = args(0)
    assert a["data_parallel_size"] == 4
    assert a["data_parallel_size_local"] == 1
    assert a["data_parallel_address"] == "10.0.0.5"
    assert a["data_parallel_rpc_port"] == 13345
    # No data_parallel_rank on the head: in vLLM it switches to external LB (one rank per front end).
    assert "data_parallel_rank" not in a
    assert "data_parallel_start_rank" not in a


def test_headless_ranks_start_at_their_rank_and_share_the_head_endpoint() -> None:
    for i in range(1, 4):
        a = args(i)
        assert a["data_parallel_start_rank"] == i
        assert a["data_parallel_size"] == 4
        assert a["data_parallel_size_local"] == 1
        assert (a["data_parallel_address"], a["data_parallel_rpc_port"]) == ("10.0.0.5", 13345)
        assert "data_parallel_rank" not in a


def test_every_rank_gets_the_same_model_and_engine_args() -> None:
    ea = {"enable_expert_parallel": True, "max_model_len": 4096}
    ranks = [args(i, engine_args=ea) for i in range(4)]
    for a in ranks:
        assert a["model"] == "/models/moe"
        assert a["tensor_parallel_size"] == 2  # num_gpus per rank
        assert a["enable_expert_parallel"] is True
        assert a["max_model_len"] == 4096
        assert a["enforce_eager"] is False  # vLLM's default (CUDA graphs)
        assert a["gpu_memory_utilization"] == pytest.approx(0.9)
    common = [{k: v for k, v in a.items() if k != "data_parallel_start_rank"} for a in ranks]
    assert all(c == common[0] for c in common)


def test_fractional_gpu_share_sets_memory_utilization() -> None:
    assert args(1, num_gpus=1, gpu_fraction=0.5)["gpu_memory_utilization"] == pytest.approx(0.45)


@pytest.mark.parametrize("key", DP_ARG_KEYS)
def test_user_engine_args_may_not_set_the_group_fields(key: str) -> None:
    with pytest.raises(InvalidEngineArgs) as e:
        args(0, engine_args={key: 1})
    assert e.value.key == key
    assert "set by the bridge" in str(e.value)


@pytest.mark.parametrize(
    ("rank", "size", "address", "port", "field"),
    [
        (0, 0, "h", 1, "data_parallel_size"),
        (0, True, "h", 1, "data_parallel_size"),
        (4, 4, "h", 1, "data_parallel_rank"),
        (-1, 4, "h", 1, "data_parallel_rank"),
        (0, 2, "", 1, "data_parallel_address"),
        (0, 2, "h", 0, "data_parallel_rpc_port"),
        (0, 2, "h", 70000, "data_parallel_rpc_port"),
    ],
)
def test_bad_group_coordinates_name_the_field(rank: int, size: int, address: str, port: int, field: str) -> None:
    with pytest.raises(InvalidEngineArgs) as e:
        dp_rank_fields(rank, size, address, port)
    assert e.value.key == field


def test_model_in_engine_args_is_refused_like_a_single_engine() -> None:
    with pytest.raises(InvalidEngineArgs):
        args(0, engine_args={"model": "/elsewhere"})


def test_pick_dp_endpoint_gives_a_free_port_on_this_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TSRAY_NODE_IP", raising=False)
    ep = pick_dp_endpoint()
    assert ep["address"] == "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", ep["rpc_port"]))  # still free
    monkeypatch.setenv("TSRAY_NODE_IP", "10.1.2.3")
    assert pick_dp_endpoint()["address"] == "10.1.2.3"
    assert pick_dp_endpoint("head.local")["address"] == "head.local"
