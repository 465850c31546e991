"""torch.distributed gloo side of bench/collective: allreduce of float32 over RANKS processes on CPU.

Usage: python gloo_allreduce.py <ranks>, then one line per sample on stdin: "<elements> <iters>"
(an empty line or EOF ends it). The process group stays up between samples, so the caller can
alternate gloo and tsray samples without paying torch's start-up each time. For each sample it prints
one JSON line {"times_ms": [...]}: per iteration, the slowest rank's time, measured as the tsray side
does (refill the tensor, barrier, time one all_reduce).
"""

from __future__ import annotations

import json
import socket
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _rank_main(rank: int, world: int, port: int, cmds: mp.SimpleQueue, out: mp.SimpleQueue) -> None:  # type: ignore[type-arg]
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    while True:
        cmd = cmds.get()
        if cmd is None:
            break
        n, iters = cmd
        x = torch.empty(n, dtype=torch.float32)
        times = []
        for i in range(iters + 1):  # the first is a warm-up
            x.fill_(1.0)
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(x)
            dt = (time.perf_counter() - t0) * 1000
            if i > 0:
                times.append(dt)
        assert float(x[0]) == world and float(x[-1]) == world
        del x
        out.put((rank, times))
    dist.barrier()
    dist.destroy_process_group()


def main() -> None:
    world = int(sys.argv[1])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    q = ctx.SimpleQueue()
    cmds = [ctx.SimpleQueue() for _ in range(world)]
    procs = [ctx.Process(target=_rank_main, args=(r, world, port, cmds[r], q)) for r in range(world)]
    for p in procs:
        p.start()
    print(json.dumps({"ready": True, "torch": torch.__version__}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        n, iters = (int(v) for v in line.split())
        for c in cmds:
            c.put((n, iters))
        per_rank = dict(q.get() for _ in range(world))
        times = [max(per_rank[r][i] for r in range(world)) for i in range(iters)]
        print(json.dumps({"times_ms": times}), flush=True)
    for c in cmds:
        c.put(None)
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"gloo rank exited with {p.exitcode}")


if __name__ == "__main__":
    main()
