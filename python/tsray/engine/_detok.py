"""Incremental detokenization and stop-string handling for one generated sequence.

Used by the backends that decode on their own (transformers); vLLM does the same inside its output
processor. Text is produced with the prefix/read-offset method (as HF TGI and vLLM do): decode a
short window of recent tokens and emit what grew, holding text back while the window ends in an
incomplete UTF-8 sequence ("\\ufffd"). With stop strings, the last ``len(longest stop) - 1``
characters are held back until they can no longer start a stop string, so streamed text never has
to be retracted; the stop string itself is not part of the output (vLLM's default).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Decode = Callable[[Sequence[int]], str]

_REPLACEMENT = "\ufffd"


class IncrementalText:
    """Text state of one sequence; feed each new token id with :meth:`add`, then :meth:`take`."""

    __slots__ = ("_decode", "_emitted", "_hold", "_ids", "_prefix", "_read", "_stops", "_text", "stopped")

    def __init__(self, decode: Decode, stop: Sequence[str] = ()) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._prefix = 0
        self._read = 0
        self._text = ""
        self._emitted = 0
        self._stops = tuple(stop)
        self._hold = max((len(s) for s in self._stops), default=1) - 1
        #: Set by :meth:`add` when a stop string matched (the text is cut before it).
        self.stopped: str | None = None

    @property
    def text(self) -> str:
        """All text decoded so far (cut at a matched stop string)."""
        return self._text

    def add(self, token_id: int) -> bool:
        """Append a token; returns True when a stop string matched (then stop feeding)."""
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        new_text = self._decode(self._ids[self._prefix :])
        if len(new_text) > len(prefix_text) and not new_text.endswith(_REPLACEMENT):
            self._append(new_text[len(prefix_text) :])
            self._prefix = self._read
            self._read = len(self._ids)
        return self.stopped is not None

    def flush(self) -> None:
        """At the end of the sequence: decode whatever is still pending (even if incomplete)."""
        if self.stopped is not None or self._read == len(self._ids):
            return
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        new_text = self._decode(self._ids[self._prefix :])
        if len(new_text) > len(prefix_text):
            self._append(new_text[len(prefix_text) :])
        self._prefix = self._read = len(self._ids)

    def _append(self, piece: str) -> None:
        if self.stopped is not None:
            return
        start = max(0, len(self._text) - self._hold)
        self._text += piece
        if not self._stops:
            return
        best = -1
        for s in self._stops:
            i = self._text.find(s, start)
            if i != -1 and (best == -1 or i < best):
                best, self.stopped = i, s
        if best != -1:
            self._text = self._text[:best]

    def take(self, final: bool) -> str:
        """Text not handed out yet; while not ``final`` the tail that could still begin a stop
        string is kept back."""
        end = len(self._text) if (final or self.stopped is not None) else len(self._text) - self._hold
        if end <= self._emitted:
            return ""
        piece = self._text[self._emitted : end]
        self._emitted = end
        return piece
