"""Continuous batching over an onnxruntime session of a model-builder decoder.

Why not onnxruntime-genai's own loop: its Engine batches dynamically only with paged attention, which
the model builder exports for CUDA alone; on the CPU it schedules static batches (a request that
arrives while a batch runs waits for the whole batch to finish) and refuses stop strings and per-request
seeds. Its Generator with batch > 1 is static as well. So the server runs the builder's decoder graph
itself, the way onnxruntime-genai runs it (same model, same session, same GroupQueryAttention kernel,
the same results token for token), and schedules it continuously:

- The key-value cache is one buffer per layer of [slots, kv_heads, context, head_size], shared between
  past and present (onnxruntime's GroupQueryAttention updates it in place). Each slot holds one sequence;
  the attention mask gives every row its own length, so sequences of different lengths decode together.
- Decoding rows are kept at slots 0..n-1: one decode step is one session run over those n rows.
  When a sequence ends, the last row's cache is moved into its slot (a copy of its valid length).
- A new request is prefilled alone in the next free slot, in chunks of `prefill_chunk` tokens, one
  chunk between two decode steps, then joins the decode batch at the next step. Requests wait in a
  bounded queue for a slot; when it is full they are refused (the HTTP layer answers 503).

The scheduler runs in one thread; onnxruntime releases the GIL while it computes, so the HTTP event
loop stays responsive. Results reach the event loop through each request's asyncio queue.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from qwen3ops.ortserver.metrics import Metrics
from qwen3ops.ortserver.model import Detokenizer, ModelPackage, StopMatcher, TextCodec
from qwen3ops.ortserver.sampling import SamplingParams, sample

log = logging.getLogger("qwen3ops.ortserver")


class QueueFullError(Exception):
    """Every batch slot is busy and the waiting queue is at its limit."""


class DrainingError(Exception):
    """The server is shutting down and accepts no new requests."""


class Runner(Protocol):
    """What the scheduler needs from a model: prefill into a slot, decode rows 0..n-1, move a slot."""

    slots: int
    context: int

    def prefill(self, slot: int, ids: list[int], past: int) -> np.ndarray: ...

    def decode(self, tokens: np.ndarray, past: np.ndarray) -> np.ndarray: ...

    def move(self, src: int, dst: int, length: int) -> None: ...


class OrtRunner:
    """The decoder of a model package in an onnxruntime session, with a slotted key-value cache."""

    def __init__(self, package: ModelPackage, slots: int, context: int, threads: int = 0,
                 spinning: bool = True) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self.session = ort.InferenceSession(str(package.decoder_file), options, providers=["CPUExecutionProvider"])
        past_input = next(i for i in self.session.get_inputs() if i.name.startswith("past_key_values"))
        types = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
        if past_input.type not in types:
            raise ValueError(f"unsupported key-value cache type {past_input.type}")
        self.dtype = types[past_input.type]
        self.slots, self.context = slots, context
        shape = (slots, package.kv_heads, context, package.head_size)
        # np.zeros maps fresh pages lazily: memory grows with the tokens actually cached.
        self.cache = {
            f"past_key_values.{i}.{kind}": np.zeros(shape, self.dtype)
            for i in range(package.layers) for kind in ("key", "value")
        }
        self._row_bytes = int(np.prod(shape[1:])) * np.dtype(self.dtype).itemsize
        self._vocab = package.vocab_size
        # One IO binding per row range, made once: the cache views and the logits buffer never move, so a
        # step only rebinds its input ids and attention mask (binding the 2 x 2 x layers cache tensors anew
        # every step costs a few percent of a 0.6B model's step, and most of a tiny model's).
        self._bindings: dict[tuple[int, int], tuple[Any, np.ndarray]] = {}

    @property
    def bytes_per_slot(self) -> int:
        return self._row_bytes * len(self.cache)

    def _binding(self, start: int, stop: int) -> tuple[Any, np.ndarray]:
        key = (start, stop)
        if key not in self._bindings:
            binding = self.session.io_binding()
            logits = np.empty((stop - start, 1, self._vocab), np.float32)
            binding.bind_output("logits", "cpu", 0, np.float32, list(logits.shape), logits.ctypes.data)
            for name, buffer in self.cache.items():
                view = buffer[start:stop]
                shape = list(view.shape)
                binding.bind_input(name, "cpu", 0, self.dtype, shape, view.ctypes.data)
                binding.bind_output(name.replace("past_key_values", "present"), "cpu", 0, self.dtype, shape,
                                    view.ctypes.data)
            self._bindings[key] = (binding, logits)
        return self._bindings[key]

    def _run(self, start: int, stop: int, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        binding, logits = self._binding(start, stop)
        binding.bind_cpu_input("input_ids", ids)
        binding.bind_cpu_input("attention_mask", mask)
        self.session.run_with_iobinding(binding)
        return logits[:, -1, :].copy()

    def prefill(self, slot: int, ids: list[int], past: int) -> np.ndarray:
        total = past + len(ids)
        return self._run(slot, slot + 1, np.array([ids], np.int64), np.ones((1, total), np.int64))[0]

    def decode(self, tokens: np.ndarray, past: np.ndarray) -> np.ndarray:
        n = tokens.shape[0]
        lengths = past + 1
        mask = (np.arange(int(lengths.max()))[None, :] < lengths[:, None]).astype(np.int64)
        return self._run(0, n, tokens.reshape(n, 1).astype(np.int64), mask)

    def move(self, src: int, dst: int, length: int) -> None:
        for buffer in self.cache.values():
            buffer[dst, :, :length] = buffer[src, :, :length]


_ids = itertools.count(1)


@dataclass
class GenerationRequest:
    """One generation: inputs, then the state the scheduler keeps while it runs."""

    prompt_ids: list[int]
    max_tokens: int
    sampling: SamplingParams
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    id: int = field(default_factory=lambda: next(_ids))
    # Set by Engine.submit.
    loop: asyncio.AbstractEventLoop | None = None
    events: asyncio.Queue[tuple[str, Any]] | None = None
    cancelled: bool = False
    # Scheduler state (engine thread only).
    arrived: float = field(default_factory=time.monotonic)
    slot: int = -1
    prefilled: int = 0
    past: int = 0
    last_token: int = -1
    generated: int = 0
    finish_reason: str | None = None
    first_token_at: float = 0.0
    prefill_done_at: float = 0.0
    last_token_at: float = 0.0
    _rng: np.random.Generator | None = None
    _detok: Detokenizer | None = None
    _stops: StopMatcher | None = None

    def cancel(self) -> None:
        """Ask the scheduler to stop this request (safe from any thread)."""
        self.cancelled = True

    def usage(self) -> dict[str, Any]:
        now = time.monotonic()
        end = self.last_token_at or now
        return {
            "prompt_tokens": len(self.prompt_ids),
            "completion_tokens": self.generated,
            "total_seconds": end - self.arrived,
            "prompt_seconds": max(0.0, (self.prefill_done_at or end) - self.arrived),
            "generation_seconds": max(0.0, end - (self.prefill_done_at or end)),
        }


class Engine:
    """The scheduler: owns the runner, the waiting queue and the batch; one thread."""

    def __init__(self, runner: Runner, codec: TextCodec, eos_token_ids: tuple[int, ...], metrics: Metrics,
                 max_queue: int = 16, prefill_chunk: int = 512) -> None:
        self.runner = runner
        self.codec = codec
        self.eos = frozenset(eos_token_ids)
        self.metrics = metrics
        self.max_queue = max_queue
        self.prefill_chunk = max(1, prefill_chunk)
        self._waiting: collections.deque[GenerationRequest] = collections.deque()
        self._decoding: list[GenerationRequest] = []
        self._prefilling: GenerationRequest | None = None
        self._cond = threading.Condition()
        self._stop = False
        self._draining = False
        self._thread: threading.Thread | None = None
        self.steps = 0

    # --- called from the event loop -------------------------------------------------------------

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def alive(self) -> bool:
        """Whether the scheduler thread runs (it only ends on stop())."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ortserver-engine", daemon=True)
        self._thread.start()

    def drain(self) -> None:
        """Refuse new requests from now on; running and queued ones continue."""
        self._draining = True

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel everything left and end the scheduler thread."""
        self._draining = True
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, request: GenerationRequest) -> GenerationRequest:
        """Queue a request; its events arrive on request.events in the calling event loop."""
        if self._draining:
            self.metrics.rejected.labels("draining").inc()
            raise DrainingError("the server is shutting down")
        request.loop = asyncio.get_running_loop()
        request.events = asyncio.Queue()
        with self._cond:
            if len(self._waiting) >= self.max_queue:
                self.metrics.rejected.labels("queue_full").inc()
                raise QueueFullError(f"{len(self._waiting)} requests are already waiting for a batch slot")
            self._waiting.append(request)
            self.metrics.waiting.set(len(self._waiting))
            self._cond.notify_all()
        return request

    def load(self) -> dict[str, int]:
        """Queue depth and running requests, for /health and the Ollama /api/ps."""
        with self._cond:
            running = len(self._decoding) + (self._prefilling is not None)
            return {"waiting": len(self._waiting), "running": running, "slots": self.runner.slots}

    # --- the scheduler thread -------------------------------------------------------------------

    def warmup(self, prompt_ids: list[int], tokens: int = 4) -> None:
        """Run a prefill and a few decode steps in slot 0 before serving (first runs are slow)."""
        logits = self.runner.prefill(0, prompt_ids, 0)
        past = np.array([len(prompt_ids)], np.int64)
        token = int(np.argmax(logits))
        for _ in range(tokens):
            logits = self.runner.decode(np.array([token], np.int64), past)[0]
            past += 1
            token = int(np.argmax(logits))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not self._waiting and not self._decoding and self._prefilling is None:
                    self._cond.wait()
                if self._stop:
                    break
                self._drop_cancelled_waiting()
                if self._prefilling is None and self._waiting and len(self._decoding) < self.runner.slots:
                    request = self._waiting.popleft()
                    request.slot = len(self._decoding)
                    self._prefilling = request
                self.metrics.waiting.set(len(self._waiting))
            self.metrics.running.set(len(self._decoding) + (self._prefilling is not None))
            try:
                self._reap_cancelled()
                if self._prefilling is not None:
                    self._prefill_step(self._prefilling)
                if self._decoding:
                    self._decode_step()
            except Exception as exc:  # an onnxruntime failure: fail the batch, keep serving
                log.exception("engine step failed")
                self.metrics.errors.labels("engine").inc()
                for request in [*self._decoding, *([self._prefilling] if self._prefilling else [])]:
                    self._emit(request, ("error", f"inference failed: {type(exc).__name__}: {exc}"))
                    request.finish_reason = "error"
                    self.metrics.finished.labels("error").inc()
                self._decoding.clear()
                self._prefilling = None
            self.metrics.running.set(len(self._decoding) + (self._prefilling is not None))
        with self._cond:
            leftovers = [*self._waiting, *self._decoding, *([self._prefilling] if self._prefilling else [])]
            self._waiting.clear()
        for request in leftovers:
            self._finish(request, "cancelled", compact=False)
        self._decoding.clear()
        self._prefilling = None
        self.metrics.running.set(0)
        self.metrics.waiting.set(0)

    def _drop_cancelled_waiting(self) -> None:
        if any(r.cancelled for r in self._waiting):
            kept = [r for r in self._waiting if not r.cancelled]
            for request in self._waiting:
                if request.cancelled:
                    request.finish_reason = "cancelled"
                    self.metrics.finished.labels("cancelled").inc()
            self._waiting = collections.deque(kept)

    def _reap_cancelled(self) -> None:
        for request in [r for r in self._decoding if r.cancelled]:
            self._finish(request, "cancelled")
        if self._prefilling is not None and self._prefilling.cancelled:
            request, self._prefilling = self._prefilling, None
            self._finish(request, "cancelled", compact=False)

    def _prefill_step(self, request: GenerationRequest) -> None:
        chunk = request.prompt_ids[request.prefilled: request.prefilled + self.prefill_chunk]
        logits = self.runner.prefill(request.slot, chunk, request.prefilled)
        request.prefilled += len(chunk)
        request.past = request.prefilled
        if request.prefilled < len(request.prompt_ids):
            return
        now = time.monotonic()
        request.prefill_done_at = now
        self.metrics.prompt_tokens.inc(len(request.prompt_ids))
        request._rng = request.sampling.rng()
        request._detok = Detokenizer(self.codec)
        request._stops = StopMatcher(request.stop)
        self._prefilling = None
        self._decoding.append(request)
        self._accept(request, sample(logits, request.sampling, request._rng), now)

    def _decode_step(self) -> None:
        batch = list(self._decoding)
        tokens = np.array([r.last_token for r in batch], np.int64)
        past = np.array([r.past for r in batch], np.int64)
        logits = self.runner.decode(tokens, past)
        now = time.monotonic()
        self.steps += 1
        self.metrics.decode_steps.inc()
        self.metrics.batch_size.observe(len(batch))
        self.metrics.batch_size_current.set(len(batch))
        greedy = np.argmax(logits, axis=1)
        for request in batch:  # every row's cache grew by one before any row may move
            request.past += 1
        for row, request in enumerate(batch):
            token = int(greedy[row]) if request.sampling.greedy else sample(logits[row], request.sampling,
                                                                            request._rng)
            self._accept(request, token, now)

    def _accept(self, request: GenerationRequest, token: int, now: float) -> None:
        """A new token for a decoding request: emit its text, then finish it if it is done."""
        if request.generated == 0:
            request.first_token_at = now
            self.metrics.ttft.observe(now - request.arrived)
        else:
            self.metrics.tpot.observe(now - request.last_token_at)
        request.last_token_at = now
        request.generated += 1
        request.last_token = token
        self.metrics.generated_tokens.inc()
        if token in self.eos and not request.ignore_eos:
            self._finish(request, "stop")
            return
        assert request._detok is not None and request._stops is not None
        text, stopped = request._stops.feed(request._detok.add(token))
        if text:
            self._emit(request, ("text", text))
        if stopped:
            self._finish(request, "stop")
        elif request.generated >= request.max_tokens or request.past >= self.runner.context:
            self._finish(request, "length")

    def _finish(self, request: GenerationRequest, reason: str, compact: bool = True) -> None:
        if request._detok is not None and request._stops is not None and reason != "cancelled":
            tail, stopped = request._stops.feed(request._detok.flush())
            if not stopped:
                tail += request._stops.flush()
            if tail:
                self._emit(request, ("text", tail))
        request.finish_reason = reason
        self.metrics.finished.labels(reason).inc()
        if request.generated:
            self.metrics.duration.observe(time.monotonic() - request.arrived)
        if compact and request in self._decoding:
            self._remove_row(request)
        self._emit(request, ("done", reason))

    def _remove_row(self, request: GenerationRequest) -> None:
        """Free a decode row and keep rows 0..n-1 dense: the last row's cache moves into the hole."""
        index = self._decoding.index(request)
        last = self._decoding[-1]
        if last is not request:
            self.runner.move(last.slot, index, last.past)
            last.slot = index
            self._decoding[index] = last
        self._decoding.pop()
        if self._prefilling is not None and self._prefilling.slot != len(self._decoding):
            target = len(self._decoding)
            self.runner.move(self._prefilling.slot, target, self._prefilling.prefilled)
            self._prefilling.slot = target
        request.slot = -1

    def _emit(self, request: GenerationRequest, event: tuple[str, Any]) -> None:
        if request.loop is not None and request.events is not None and not request.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (shutdown)
                request.loop.call_soon_threadsafe(request.events.put_nowait, event)
