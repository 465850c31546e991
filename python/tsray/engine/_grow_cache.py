"""The transformers engine's KV cache pieces: a growing ``DynamicLayer`` and left-padding.

Split from :mod:`tsray.engine.transformers_backend` (which batches with them): the cache layer
keeps keys/values in preallocated buffers that grow by doubling, so a decode step writes one column
in place instead of re-concatenating the whole cache.
"""

from __future__ import annotations

from typing import Any

__all__ = ["grow_layer_class", "lpad"]


def lpad(torch: Any, x: Any, by: int, dim: int) -> Any:
    """``x`` with ``by`` zeros prepended along ``dim``."""
    if by == 0:
        return x
    shape = list(x.shape)
    shape[dim] = by
    return torch.cat([x.new_zeros(shape), x], dim=dim)


_GROW_LAYER: Any = None


def grow_layer_class() -> Any:
    """A ``DynamicLayer`` that keeps keys/values in preallocated buffers ``[B, H, capacity, D]``.

    transformers' own ``DynamicLayer.update`` concatenates the whole cache every step (quadratic in
    the sequence length, and the dominant cost for a large batch); this one writes the new column
    in place and doubles the capacity when full. ``keys``/``values`` are views of the used part.
    Defined lazily because it subclasses a transformers class.
    """
    global _GROW_LAYER
    if _GROW_LAYER is not None:
        return _GROW_LAYER
    import torch
    from transformers.cache_utils import DynamicLayer

    class GrowLayer(DynamicLayer):
        def _set(self, kbuf: Any, vbuf: Any, length: int) -> None:
            self._kbuf, self._vbuf, self._len = kbuf, vbuf, length
            self.keys = kbuf[:, :, :length]
            self.values = vbuf[:, :, :length]
            self.dtype, self.device = kbuf.dtype, kbuf.device
            self.is_initialized = True

        @classmethod
        def from_tensors(cls, keys: Any, values: Any, headroom: int = 64) -> GrowLayer:
            layer = cls()
            layer._set(*cls._alloc(keys, values, keys.shape[2] + headroom), keys.shape[2])
            return layer

        @staticmethod
        def _alloc(keys: Any, values: Any, capacity: int, offset: int = 0) -> tuple[Any, Any]:
            b, h, t, d = keys.shape
            kbuf = keys.new_zeros((b, h, capacity, d))
            vbuf = values.new_zeros((b, h, capacity, values.shape[3]))
            kbuf[:, :, offset : offset + t] = keys
            vbuf[:, :, offset : offset + t] = values
            return kbuf, vbuf

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            n = key_states.shape[2]
            end = self._len + n
            if end > self._kbuf.shape[2]:
                kbuf, vbuf = self._alloc(self.keys, self.values, max(2 * self._kbuf.shape[2], end + 64))
                self._set(kbuf, vbuf, self._len)
            self._kbuf[:, :, self._len : end] = key_states
            self._vbuf[:, :, self._len : end] = value_states
            self._set(self._kbuf, self._vbuf, end)
            return self.keys, self.values

        def select(self, idx: Any, trim: int) -> None:
            """Keep batch rows ``idx``; drop the first ``trim`` (all-padding) columns."""
            if trim:
                keys = self.keys.index_select(0, idx)[:, :, trim:]
                values = self.values.index_select(0, idx)[:, :, trim:]
                self._set(*self._alloc(keys, values, self._kbuf.shape[2]), keys.shape[2])
            else:
                self._set(self._kbuf.index_select(0, idx), self._vbuf.index_select(0, idx), self._len)

        def append_rows(self, keys: Any, values: Any) -> None:
            """Add rows (their own length ``tn``), left-aligning both sides to a common length."""
            tb, tn = self._len, keys.shape[2]
            t = max(tb, tn)
            cap = max(self._kbuf.shape[2], t + 64)
            nk, nv = self._alloc(keys, values, cap, offset=t - tn)
            if tb == t and cap == self._kbuf.shape[2]:
                kbuf, vbuf = self._kbuf, self._vbuf
            else:
                kbuf, vbuf = self._alloc(self.keys, self.values, cap, offset=t - tb)
            self._set(torch.cat([kbuf, nk], dim=0), torch.cat([vbuf, nv], dim=0), t)

        def batch_repeat_interleave(self, repeats: int) -> None:
            self._set(self._kbuf.repeat_interleave(repeats, 0), self._vbuf.repeat_interleave(repeats, 0), self._len)

        def batch_select_indices(self, indices: Any) -> None:
            self._set(self._kbuf[indices, ...], self._vbuf[indices, ...], self._len)

        def crop(self, tokens_to_remove: int) -> None:
            raise NotImplementedError("tsray GrowLayer does not crop")

    _GROW_LAYER = GrowLayer
    return GrowLayer
