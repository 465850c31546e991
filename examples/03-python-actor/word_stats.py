"""A Python actor and function used from TypeScript (examples/03-python-actor/main.ts)."""
import asyncio
from collections import Counter

import numpy as np


class WordStats:
    """Counts words across calls; `async def` methods run concurrently in the actor's process."""

    def __init__(self, language: str) -> None:
        self.language = language
        self.counts: Counter[str] = Counter()

    def add(self, text: str) -> int:
        words = text.lower().split()
        self.counts.update(words)
        print(f"[{self.language}] added {len(words)} words")
        return len(words)

    def top(self, n: int) -> list[list]:
        return [[w, c] for w, c in self.counts.most_common(n)]

    async def slow_len(self, text: str) -> int:
        await asyncio.sleep(0.1)
        return len(text)


def normalize(values):
    a = np.asarray(values, dtype=np.float64)
    return (a - a.mean()) / (a.std() or 1.0)
