"""The Python ranks of examples/09-dp-training: torch CPU, gradients all-reduced with tsray.collective.

Each rank holds a slice of a synthetic regression dataset (numpy, seeded: the same samples in every
process) and the same MLP (8 -> 128 -> 128 -> 1, tanh). Every step it computes the summed loss and
gradient on its slice, all-reduces them (one float32 buffer: the gradients, then the loss), and takes
the SGD step on the mean over all the data, so every rank stays identical to one process training on
everything (``train_single``).
"""

from __future__ import annotations

import numpy as np
import torch

from tsray import collective as col

SAMPLES, INPUTS, HIDDEN, SEED, LR = 1024, 8, 128, 7, 0.05


def dataset(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(SEED)
    w = rng.uniform(-1, 1, INPUTS)
    x = rng.uniform(-1, 1, (SAMPLES, INPUTS))
    y = np.sin(x @ w) + 0.5 * x[:, 0] * x[:, 1] + rng.uniform(-0.025, 0.025, SAMPLES)
    return torch.tensor(x[start:stop], dtype=torch.float32), torch.tensor(y[start:stop, None], dtype=torch.float32)


def model() -> torch.nn.Module:
    torch.manual_seed(SEED)
    return torch.nn.Sequential(
        torch.nn.Linear(INPUTS, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, 1)
    )


class Trainer:
    """One rank: its slice of the data and a replica of the model."""

    def __init__(self, rank: int, world: int) -> None:
        torch.set_num_threads(1)
        per = SAMPLES // world
        self.x, self.y = dataset(rank * per, (rank + 1) * per)
        self.model = model()

    def train(self, steps: int, group: str | None = None) -> list[float]:
        """``steps`` SGD steps; the loss (mean over all the data) before each step."""
        params = list(self.model.parameters())
        sizes = [p.numel() for p in params]
        buf = np.empty(sum(sizes) + 1, dtype=np.float32)
        losses: list[float] = []
        for _ in range(steps):
            self.model.zero_grad()
            loss_sum = ((self.model(self.x) - self.y) ** 2).sum()
            loss_sum.backward()
            buf[:-1] = torch.cat([p.grad.reshape(-1) for p in params]).numpy()  # type: ignore[union-attr]
            buf[-1] = float(loss_sum.detach())
            if group is not None:
                col.allreduce(buf, group, "sum")
            losses.append(float(buf[-1]) / SAMPLES)
            grads = torch.from_numpy(buf[:-1])
            with torch.no_grad():
                at = 0
                for p, n in zip(params, sizes):
                    p -= LR * grads[at : at + n].reshape(p.shape) / SAMPLES
                    at += n
        return losses


def train_single(steps: int) -> list[float]:
    """The reference: one process training on all the data."""
    return Trainer(0, 1).train(steps)
