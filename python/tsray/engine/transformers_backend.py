"""HF transformers engine backend: continuous batching in one background thread (CPU or GPU).

For machines without vLLM (CI, laptops): it loads a local model folder with
``AutoModelForCausalLM``/``AutoTokenizer`` (``local_files_only``) and serves many concurrent
requests through its own step loop.

How it batches
--------------
One engine thread owns the model and a *running batch*: one row per sequence (a request with
``n > 1`` has ``n`` rows), a shared ``DynamicCache`` whose rows are **left-padded** to a common
length ``T``, a ``[B, T]`` attention mask (0 = padding) and each row's next RoPE position. Every
iteration of the loop:

1. takes commands (aborts) and admits waiting requests up to ``max_num_seqs`` rows;
2. **prefills** the admitted prompts together in one left-padded forward pass (bounded by
   ``max_num_batched_tokens`` padded tokens per pass), samples each sequence's first token, repeats
   the prompt's cache rows ``n`` times and concatenates them to the running batch's cache (left-padding
   the shorter of the two along the sequence axis);
3. runs **one decode forward pass for all rows** (``input_ids [B, 1]``, explicit ``position_ids``,
   mask extended by one column), samples one token per row with per-row temperature/top-k/top-p and a
   per-sequence random stream (seeded ones are reproducible whatever else is in the batch);
4. detokenizes incrementally, checks EOS / stop strings / ``max_tokens`` / the context length, drops
   finished rows from the cache (index-select) and trims leading all-padding columns;
5. hands the step's deltas to the asyncio loop in one ``call_soon_threadsafe`` call.

So requests join and leave the batch between any two decode steps (continuous batching), and every
token is streamed as soon as its step ends. The cache layers keep keys/values in preallocated buffers
that grow by doubling (transformers' ``DynamicLayer`` re-concatenates the whole cache every step,
which made a 256-row batch ~3x slower). Sampling uses one random stream per sequence and the same
code path per row whatever the batch holds, so a seeded request gives the same tokens alone or
batched (tested). Supported models: decoder-only with full attention (Llama, Qwen2, Mistral without
sliding window, ...); others are refused at start.

Performance notes: on CPU the process uses 1 torch thread unless ``torch_threads`` says otherwise
(the tiny model's step is overhead-bound; with 2 threads on a busy 2-core machine OpenMP spinning
halved throughput). On CUDA the cuDNN SDPA backend is disabled (it re-plans for every key length).
Rough numbers with the tiny model: ~700 tok/s for one stream and 4,000-7,000 tok/s with 64-256
concurrent streams on the 2-core CPU box; ~8,000 tok/s (64 streams) on an H200, Python-bound.

``generate()`` must be called from a running event loop (deltas are handed to that loop).

Model loading and engine-argument checks are in ``_hf_loader.py``; the growing cache layer in
``_grow_cache.py``.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import logging
import random
import threading
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._detok import IncrementalText
from ._grow_cache import grow_layer_class, lpad
from ._hf_loader import DEFAULT_MAX_BATCHED_TOKENS, DEFAULT_MAX_NUM_SEQS, load_model
from .backend import (
    HFTokenizerMixin,
    Delta,
    DuplicateRequestId,
    EngineBackend,
    EngineDead,
    EngineError,
    EngineNotStarted,
    EngineStats,
    FinishReason,
    SamplingParams,
    check_prompt,
    check_prompt_ids,
)

__all__ = ["TRANSFORMERS_ENGINE_ARGS", "TransformersBackend"]

log = logging.getLogger("tsray.engine.transformers")

#: Engine arguments this backend understands (others, e.g. vLLM-only ones, are ignored with a warning).
TRANSFORMERS_ENGINE_ARGS = {
    "device": "torch device ('cpu', 'cuda', 'cuda:1'); default cuda when num_gpus > 0 and CUDA works",
    "dtype": "'auto' (float32 on CPU, the config's dtype on GPU), 'float32', 'bfloat16', 'float16'",
    "max_model_len": "context length; default and upper bound: the config's max_position_embeddings",
    "max_num_seqs": "most sequences in the running batch (default 256)",
    "max_num_batched_tokens": "most padded prompt tokens per prefill pass (default 8192)",
    "seed": "seed of the unseeded requests' random streams (default: random)",
    "torch_threads": "torch.set_num_threads for the process; default 1 on CPU (a small model's step is "
    "overhead-bound and spinning OpenMP threads starve the event loop on small machines; raise it for "
    "larger models), torch's choice on GPU",
    "attn_implementation": "'sdpa' (default) or 'eager'",
}


class _StepFailed(EngineError):
    """A forward pass failed; the requests in it fail with this error."""

    def __init__(self, what: str, cause: BaseException) -> None:
        super().__init__(f"transformers engine: {what} failed: {type(cause).__name__}: {cause}")


@dataclass(eq=False)
class _Seq:
    req: _Request
    index: int
    rng: random.Random
    text: IncrementalText
    token_ids: list[int] = field(default_factory=list)
    last_token: int = -1
    finish: FinishReason | None = None


@dataclass(eq=False)
class _Request:
    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    max_tokens: int
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Delta | BaseException]
    seqs: list[_Seq] = field(default_factory=list)
    unfinished: int = 0
    abort_requested: bool = False
    detached: bool = False


class TransformersBackend(HFTokenizerMixin, EngineBackend):
    """Engine on HF transformers with its own continuous-batching loop (see the module docstring).

    Attributes for observation (tests, metrics): :attr:`max_observed_batch_size` (most rows in one
    decode pass), :attr:`steps` (decode passes run), :attr:`device`.
    """

    name = "transformers"

    def __init__(self) -> None:
        self._model: Any = None
        self._tok: Any = None
        self._torch: Any = None
        self._model_dir = ""
        self._max_model_len = 0
        self._max_num_seqs = DEFAULT_MAX_NUM_SEQS
        self._max_batched_tokens = DEFAULT_MAX_BATCHED_TOKENS
        self._vocab_size = 0
        self._eos_ids: tuple[int, ...] = ()
        self._rng = random.Random()
        self._fast_decode: Any = None
        self.device = "cpu"
        # shared with the engine thread (guarded by _cond)
        self._cond = threading.Condition()
        self._requests: dict[str, _Request] = {}
        self._waiting: collections.deque[_Request] = collections.deque()
        self._aborts: list[str] = []
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._dead: str | None = None
        # engine-thread state
        self._rows: list[_Seq] = []
        self._cache: Any = None
        self._mask: Any = None
        self._pos: Any = None
        self._stats = EngineStats()
        self.max_observed_batch_size = 0
        self.steps = 0

    # ------------------------------------------------------------------------------- life cycle

    async def start(
        self,
        model_dir: str,
        engine_args: Mapping[str, Any] | None = None,
        num_gpus: float = 0.0,
        gpu_fraction: float = 1.0,
    ) -> None:
        if self._thread is not None:
            raise EngineError("transformers engine: start() was already called")
        args = dict(engine_args or {})
        for key in sorted(set(args) - set(TRANSFORMERS_ENGINE_ARGS)):
            log.warning("transformers engine: ignoring engine argument %r (not used by this backend)", key)
        await asyncio.to_thread(self._load, model_dir, args, num_gpus, gpu_fraction)
        self._thread = threading.Thread(target=self._run, name="tsray-engine-transformers", daemon=True)
        self._thread.start()
        # A process that exits without shutdown() must not kill the thread inside a torch call
        # (that aborts the interpreter: "terminate called without an active exception").
        atexit.register(_stop_at_exit, weakref.ref(self))

    def _load(self, model_dir: str, args: dict[str, Any], num_gpus: float, gpu_fraction: float) -> None:
        m = load_model(model_dir, args, num_gpus, gpu_fraction)
        self._torch, self._model, self._tok, self._fast_decode = m.torch, m.model, m.tokenizer, m.fast_decode
        self._model_dir, self.device = m.model_dir, m.device
        self._max_model_len, self._max_num_seqs, self._max_batched_tokens = m.max_model_len, m.max_num_seqs, m.max_batched_tokens
        self._rng, self._vocab_size, self._eos_ids = m.rng, m.vocab_size, m.eos_ids

    def _stop_thread(self, timeout: float | None) -> None:
        thread = self._thread
        if thread is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread.join(timeout)

    async def shutdown(self) -> None:
        thread = self._thread
        if thread is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        await asyncio.to_thread(thread.join)
        self._thread = None
        self._model = None
        self._cache = None
        if self._dead is None:
            self._dead = "shut down"

    async def health(self) -> None:
        if self._thread is None:
            if self._dead is not None:
                raise EngineDead(self.name, self._dead)
            raise EngineNotStarted(self.name, "health()")
        if self._dead is not None:
            raise EngineDead(self.name, self._dead)
        if not self._thread.is_alive():
            raise EngineDead(self.name, "the engine thread exited")

    async def stats(self) -> EngineStats:
        """``running`` and ``kv_cache_usage`` as of the last finished step; ``waiting`` is live."""
        with self._cond:
            waiting = sum(r.params.n for r in self._waiting)
        s = self._stats
        return EngineStats(waiting=waiting, running=s.running, kv_cache_usage=s.kv_cache_usage)

    # ------------------------------------------------------------------------------- tokenizer

    # _need_tok, max_model_len, tokenizer_info, encode, decode, apply_chat_template: HFTokenizerMixin

    # ------------------------------------------------------------------------------- requests

    def generate(self, request_id: str, prompt: str | list[int], params: SamplingParams) -> AsyncIterator[Delta]:
        if self._thread is None or self._dead is not None:
            if self._dead is not None:
                raise EngineDead(self.name, self._dead)
            raise EngineNotStarted(self.name, "generate()")
        params.validate()
        p = check_prompt(prompt)
        ids = self.encode(p) if isinstance(p, str) else p
        check_prompt_ids(ids, self._vocab_size, self._max_model_len)
        room = self._max_model_len - len(ids)
        max_tokens = room if params.max_tokens is None else min(params.max_tokens, room)
        loop = asyncio.get_running_loop()
        req = _Request(request_id, ids, params, max_tokens, loop, asyncio.Queue())
        decode = self._decode_fragment
        for i in range(params.n):
            rng = (
                random.Random(f"{params.seed}:{i}")
                if params.seed is not None
                else random.Random(self._rng.getrandbits(64))
            )
            req.seqs.append(_Seq(req, i, rng, IncrementalText(decode, params.stop)))
        req.unfinished = params.n
        with self._cond:
            if request_id in self._requests:
                raise DuplicateRequestId(request_id)
            self._requests[request_id] = req
            self._waiting.append(req)
            self._cond.notify()
        return self._stream(req)

    def _decode_fragment(self, ids: Sequence[int]) -> str:
        fast = self._fast_decode
        if fast is not None:  # the Rust tokenizer directly: ~3x less overhead per call
            return str(fast(list(ids), skip_special_tokens=True))
        return str(self._tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False))

    async def _stream(self, req: _Request) -> AsyncIterator[Delta]:
        remaining = req.params.n
        try:
            while remaining:
                item = await req.queue.get()
                if isinstance(item, BaseException):
                    raise item
                if item.finish_reason is not None:
                    remaining -= 1
                yield item
        finally:
            if remaining:
                req.detached = True
                self._request_abort(req.request_id)

    def _request_abort(self, request_id: str) -> bool:
        with self._cond:
            req = self._requests.get(request_id)
            if req is None or req.abort_requested:
                return req is not None
            req.abort_requested = True
            self._aborts.append(request_id)
            self._cond.notify()
            return True

    async def abort(self, request_id: str) -> bool:
        return self._request_abort(request_id)

    # --------------------------------------------------------------------------- engine thread

    def _run(self) -> None:
        torch = self._torch
        try:
            with torch.inference_mode(), self._sdpa_backends():
                while True:
                    with self._cond:
                        while not (self._stopping or self._aborts or self._waiting or self._rows):
                            self._cond.wait()
                        if self._stopping:
                            break
                        aborts, self._aborts = self._aborts, []
                        admitted: list[_Request] = []
                        free = self._max_num_seqs - len(self._rows)
                        while self._waiting and (self._waiting[0].params.n <= free or not (self._rows or admitted)):
                            r = self._waiting.popleft()
                            free -= r.params.n
                            admitted.append(r)
                        waiting_seqs = sum(r.params.n for r in self._waiting)
                    out: list[tuple[_Request, Delta | BaseException]] = []
                    if aborts:
                        self._apply_aborts(set(aborts), admitted, out)
                    abort_set = set(aborts)
                    admitted = [r for r in admitted if r.request_id not in abort_set]
                    if admitted:
                        self._prefill(admitted, out)
                    if self._rows:
                        self._decode_step(out)
                    self._publish_stats(waiting_seqs)
                    self._deliver(out)
        except BaseException as e:  # a bug in the loop itself: fail everything, the engine is dead
            log.exception("transformers engine loop crashed")
            self._dead = f"engine loop crashed: {type(e).__name__}: {e}"
            err = EngineDead(self.name, self._dead)
            self._fail_all(err)
            return
        self._fail_all(None)

    def _sdpa_backends(self) -> Any:
        """On CUDA, keep SDPA off the cuDNN backend: it plans a new graph for every key length,
        and the key length grows by one each decode step (measured on an H200: ~34 ms per
        attention call with cuDNN, far below 1 ms with the efficient/flash kernels)."""
        import contextlib

        if not self.device.startswith("cuda"):
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])

    def _fail_all(self, err: BaseException | None) -> None:
        """End every known request: with ``err``, or (shutdown) with 'abort' deltas."""
        with self._cond:
            reqs = list(self._requests.values())
            self._requests.clear()
            self._waiting.clear()
        out: list[tuple[_Request, Delta | BaseException]] = []
        for req in reqs:
            if err is not None:
                out.append((req, err))
                continue
            for s in req.seqs:
                if s.finish is None:
                    s.finish = "abort"
                    out.append((req, self._delta(s, [], None, final=True)))
        self._rows = []
        self._cache = self._mask = self._pos = None
        self._stats = EngineStats()
        self._deliver(out)

    def _apply_aborts(self, ids: set[str], admitted: list[_Request], out: list) -> None:
        keep = []
        for i, s in enumerate(self._rows):
            if s.req.request_id in ids:
                s.finish = "abort"
                out.append((s.req, self._delta(s, [], None, final=True)))
                self._seq_done(s)
            else:
                keep.append(i)
        if len(keep) != len(self._rows):
            self._select_rows(keep)
        for req in admitted:
            if req.request_id in ids:
                for s in req.seqs:
                    s.finish = "abort"
                    out.append((req, self._delta(s, [], None, final=True)))
                    self._seq_done(s)
        # A request still in the waiting queue: drop it there.
        with self._cond:
            gone = [r for r in self._waiting if r.request_id in ids]
            for r in gone:
                self._waiting.remove(r)
        for req in gone:
            for s in req.seqs:
                s.finish = "abort"
                out.append((req, self._delta(s, [], None, final=True)))
                self._seq_done(s)

    def _seq_done(self, s: _Seq) -> None:
        req = s.req
        req.unfinished -= 1
        if req.unfinished == 0:
            with self._cond:
                if self._requests.get(req.request_id) is req:
                    del self._requests[req.request_id]

    def _delta(self, s: _Seq, new_ids: list[int], logprobs: list[dict[int, float]] | None, final: bool) -> Delta:
        if final:
            s.text.flush()
        return Delta(
            text=s.text.take(final),
            token_ids=new_ids,
            finish_reason=s.finish if final else None,
            prompt_tokens=len(s.req.prompt_ids),
            completion_tokens=len(s.token_ids),
            logprobs=logprobs,
            index=s.index,
        )

    def _deliver(self, out: list[tuple[_Request, Delta | BaseException]]) -> None:
        if not out:
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Request, Delta | BaseException]]] = {}
        for req, item in out:
            if not req.detached:
                by_loop.setdefault(req.loop, []).append((req, item))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_put_all, items)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                pass

    def _publish_stats(self, waiting_seqs: int) -> None:
        used = int(self._mask.sum()) if self._mask is not None and self._rows else 0
        capacity = self._max_num_seqs * self._max_model_len
        self._stats = EngineStats(
            waiting=waiting_seqs, running=len(self._rows), kv_cache_usage=min(1.0, used / capacity)
        )

    # ------------------------------------------------------------------- batch and cache edits

    def _select_rows(self, keep: list[int]) -> None:
        """Keep only rows ``keep`` (indices into the batch), then trim all-padding columns."""
        torch = self._torch
        if not keep:
            self._rows, self._cache, self._mask, self._pos = [], None, None, None
            return
        idx = torch.tensor(keep, device=self._mask.device)
        self._rows = [self._rows[i] for i in keep]
        self._mask = self._mask.index_select(0, idx)
        self._pos = self._pos.index_select(0, idx)
        first = int(torch.argmax(self._mask.any(dim=0).to(torch.int32)))
        if first > 0:
            self._mask = self._mask[:, first:].contiguous()
        for layer in self._cache.layers:
            layer.select(idx, first)

    def _merge(self, cache: Any, mask: Any, pos: Any, rows: list[_Seq]) -> None:
        """Append new rows (a prefill's cache, mask and next positions) to the running batch."""
        torch = self._torch
        grow = grow_layer_class()
        if self._cache is None:
            cache.layers = [grow.from_tensors(layer.keys, layer.values) for layer in cache.layers]
            self._cache, self._mask, self._pos, self._rows = cache, mask, pos, list(rows)
            return
        tb, tn = self._mask.shape[1], mask.shape[1]
        t = max(tb, tn)
        for bl, nl in zip(self._cache.layers, cache.layers, strict=True):
            bl.append_rows(nl.keys, nl.values)
        self._mask = torch.cat([lpad(torch, self._mask, t - tb, 1), lpad(torch, mask, t - tn, 1)], dim=0)
        self._pos = torch.cat([self._pos, pos])
        self._rows.extend(rows)

    # ------------------------------------------------------------------------- forward passes

    def _prefill(self, admitted: list[_Request], out: list) -> None:
        # Group prompts so that one pass holds at most max_num_batched_tokens padded tokens.
        groups: list[list[_Request]] = []
        cur: list[_Request] = []
        longest = 0
        for req in admitted:
            l = len(req.prompt_ids)
            if cur and max(longest, l) * (len(cur) + 1) > self._max_batched_tokens:
                groups.append(cur)
                cur, longest = [], 0
            cur.append(req)
            longest = max(longest, l)
        if cur:
            groups.append(cur)
        for group in groups:
            try:
                self._prefill_group(group, out)
            except Exception as e:
                log.exception("transformers engine: prefill failed")
                err = _StepFailed("prefill", e)
                for req in group:
                    self._fail_request(req, err, out)

    def _fail_request(self, req: _Request, err: BaseException, out: list) -> None:
        for s in req.seqs:
            if s.finish is None:
                s.finish = "abort"
        req.unfinished = 0
        with self._cond:
            if self._requests.get(req.request_id) is req:
                del self._requests[req.request_id]
        out.append((req, err))

    def _prefill_group(self, group: list[_Request], out: list) -> None:
        torch = self._torch
        from transformers import DynamicCache

        dev = self._model.device
        t = max(len(r.prompt_ids) for r in group)
        ids = torch.zeros((len(group), t), dtype=torch.long)
        mask = torch.zeros((len(group), t), dtype=torch.long)
        for i, r in enumerate(group):
            ids[i, t - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids)
            mask[i, t - len(r.prompt_ids) :] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        res = self._model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        cache = res.past_key_values
        logits = res.logits[:, -1, :].float()
        # n > 1: repeat each prompt's row n times.
        reps = [r.params.n for r in group]
        if any(n > 1 for n in reps):
            rep = torch.tensor(reps, device=dev)
            for layer in cache.layers:
                layer.keys = layer.keys.repeat_interleave(rep, dim=0)
                layer.values = layer.values.repeat_interleave(rep, dim=0)
            mask = mask.repeat_interleave(rep, dim=0)
            logits = logits.repeat_interleave(rep, dim=0)
        rows = [s for r in group for s in r.seqs]
        pos = torch.tensor([len(s.req.prompt_ids) for s in rows], device=dev)
        self._merge(cache, mask, pos, rows)
        first = len(self._rows) - len(rows)
        self._sample_and_advance(logits, list(range(first, len(self._rows))), out)

    def _decode_step(self, out: list) -> None:
        torch = self._torch
        dev = self._model.device
        b = len(self._rows)
        self.max_observed_batch_size = max(self.max_observed_batch_size, b)
        self.steps += 1
        ids = torch.tensor([[s.last_token] for s in self._rows], device=dev)
        mask = torch.cat([self._mask, self._mask.new_ones((b, 1))], dim=1)
        try:
            res = self._model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=self._pos[:, None],
                past_key_values=self._cache,
                use_cache=True,
            )
        except Exception as e:
            log.exception("transformers engine: decode step failed")
            err = _StepFailed("decode step", e)
            for req in {id(s.req): s.req for s in self._rows}.values():
                self._fail_request(req, err, out)
            self._rows, self._cache, self._mask, self._pos = [], None, None, None
            return
        self._cache = res.past_key_values
        self._mask = mask
        self._pos = self._pos + 1
        self._sample_and_advance(res.logits[:, -1, :].float(), list(range(b)), out)

    # ------------------------------------------------------------------------------- sampling

    def _sample(self, logits: Any, seqs: list[_Seq]) -> tuple[list[int], Any]:
        """One token per row of ``logits`` [R, V] (float32) for ``seqs``; returns the ids and
        the raw log-softmax (or None when no row asked for logprobs)."""
        torch = self._torch
        dev = logits.device
        params = [s.req.params for s in seqs]
        want_lp = any(p.logprobs is not None for p in params)
        logp = torch.log_softmax(logits, dim=-1) if want_lp else None
        greedy = [p.temperature == 0 for p in params]
        if all(greedy):
            return logits.argmax(dim=-1).tolist(), logp
        vocab = logits.shape[-1]
        temps = torch.tensor([p.temperature if p.temperature > 0 else 1.0 for p in params], device=dev)
        scaled = logits / temps[:, None]
        u = torch.tensor([s.rng.random() for s in seqs], device=dev, dtype=scaled.dtype)
        # Rows without top-k/top-p sample over the vocabulary order, filtered rows over the sorted
        # order; each row always takes the same path, so a seeded row does not depend on its batch.
        filtered = [p.top_k > 0 or p.top_p < 1 for p in params]
        sampled = torch.empty(len(seqs), dtype=torch.long, device=dev)
        plain_rows = [i for i, f in enumerate(filtered) if not f]
        if plain_rows:
            idx = torch.tensor(plain_rows, device=dev)
            cdf = torch.softmax(scaled.index_select(0, idx), dim=-1).cumsum(dim=-1)
            uu = u.index_select(0, idx) * cdf[:, -1]
            choice = torch.searchsorted(cdf, uu[:, None].contiguous(), right=True).clamp_(max=vocab - 1)
            sampled[idx] = choice.squeeze(1)
        filt_rows = [i for i, f in enumerate(filtered) if f]
        if filt_rows:
            idx = torch.tensor(filt_rows, device=dev)
            fparams = [params[i] for i in filt_rows]
            sorted_vals, sorted_idx = scaled.index_select(0, idx).sort(dim=-1, descending=True)
            probs = torch.softmax(sorted_vals, dim=-1)
            ranks = torch.arange(vocab, device=dev)[None, :]
            ks = torch.tensor([p.top_k if p.top_k > 0 else vocab for p in fparams], device=dev)
            drop = ranks >= ks[:, None]
            top_ps = torch.tensor([float(p.top_p) for p in fparams], device=dev)
            if bool((top_ps < 1).any()):
                before = probs.cumsum(dim=-1) - probs  # mass strictly above each token
                drop |= before >= top_ps[:, None]
            drop[:, 0] = False  # the most likely token always stays
            cdf = probs.masked_fill(drop, 0.0).cumsum(dim=-1)
            uu = u.index_select(0, idx) * cdf[:, -1]
            choice = torch.searchsorted(cdf, uu[:, None].contiguous(), right=True).clamp_(max=vocab - 1)
            sampled[idx] = sorted_idx.gather(1, choice).squeeze(1)
        if any(greedy):
            sampled = torch.where(torch.tensor(greedy, device=dev), logits.argmax(dim=-1), sampled)
        return sampled.tolist(), logp

    def _sample_and_advance(self, logits: Any, row_idx: list[int], out: list) -> None:
        seqs = [self._rows[i] for i in row_idx]
        tokens, logp = self._sample(logits, seqs)
        top_cache: dict[int, tuple[list[float], list[int]]] = {}
        if logp is not None:
            kmax = max((s.req.params.logprobs or 0) for s in seqs)
            if kmax > 0:
                vals, idxs = logp.topk(kmax, dim=-1)
                vals_l, idxs_l = vals.tolist(), idxs.tolist()
                top_cache = {j: (vals_l[j], idxs_l[j]) for j in range(len(seqs))}
        finished_rows: set[int] = set()
        for j, (s, tok) in enumerate(zip(seqs, tokens)):
            req, p = s.req, s.req.params
            s.token_ids.append(tok)
            s.last_token = tok
            lps = None
            if p.logprobs is not None and logp is not None:
                entry = {tok: float(logp[j, tok])}
                if p.logprobs > 0:
                    vals, idxs = top_cache[j]
                    for v, t in zip(vals[: p.logprobs], idxs[: p.logprobs]):
                        entry.setdefault(t, v)
                lps = [entry]
            finish: FinishReason | None = None
            if not p.ignore_eos and tok in self._eos_ids or s.text.add(tok):
                finish = "stop"
            elif len(s.token_ids) >= req.max_tokens:
                finish = "length"
            if finish is not None:
                s.finish = finish
                finished_rows.add(row_idx[j])
                out.append((req, self._delta(s, [tok], lps, final=True)))
                self._seq_done(s)
            else:
                out.append((req, self._delta(s, [tok], lps, final=False)))
        if finished_rows:
            self._select_rows([i for i in range(len(self._rows)) if i not in finished_rows])


def _stop_at_exit(ref: weakref.ref[TransformersBackend]) -> None:
    backend = ref()
    if backend is not None:
        backend._stop_thread(timeout=30)


def _put_all(items: list[tuple[_Request, Delta | BaseException]]) -> None:
    for req, item in items:
        if not req.detached:
            req.queue.put_nowait(item)
