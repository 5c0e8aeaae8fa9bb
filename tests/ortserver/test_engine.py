"""The continuous-batching scheduler, driven by a fake model (FakeRunner) so that every property is exact:
requests decoded together give the same tokens as alone, late requests join a running batch, cancelled
ones free their slot, the queue is bounded, and EOS / stop strings / max_tokens / context end a request."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from qwen3ops.ortserver.engine import DrainingError, Engine, GenerationRequest, QueueFullError
from qwen3ops.ortserver.metrics import Metrics
from qwen3ops.ortserver.model import TextCodec
from qwen3ops.ortserver.sampling import SamplingParams

VOCAB = 151936
EOS = 151645
LETTERS = list(range(64, 90))  # byte-level ids of "a".."z"


class FakeRunner:
    """A fake model with a real slotted cache: each slot keeps its token history; the next token is a function
    of that history, so a wrong cache move or a row mix-up changes the output. A prompt containing token 999
    makes the model emit EOS after three tokens."""

    def __init__(self, slots: int = 4, context: int = 256, step_seconds: float = 0.0) -> None:
        self.slots, self.context, self.step_seconds = slots, context, step_seconds
        self.history: list[list[int]] = [[] for _ in range(slots)]
        self.batch_sizes: list[int] = []
        self.fail_next = False
        self.lock = threading.Lock()

    def _logits(self, history: list[int]) -> np.ndarray:
        row = np.zeros(VOCAB, np.float32)
        prompt_has_eos_marker = 999 in history
        generated = sum(1 for t in history if t in LETTERS)
        if prompt_has_eos_marker and generated >= 3:
            row[EOS] = 10.0
        else:
            row[LETTERS[(sum(history) * 31 + len(history)) % len(LETTERS)]] = 10.0
        return row

    def prefill(self, slot: int, ids: list[int], past: int) -> np.ndarray:
        assert len(self.history[slot]) >= past
        self.history[slot] = self.history[slot][:past] + list(ids)
        return self._logits(self.history[slot])

    def decode(self, tokens: np.ndarray, past: np.ndarray) -> np.ndarray:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("simulated onnxruntime failure")
        time.sleep(self.step_seconds)
        self.batch_sizes.append(len(tokens))
        out = []
        for row, (token, length) in enumerate(zip(tokens.tolist(), past.tolist(), strict=True)):
            assert len(self.history[row]) >= length, "a row's cache is shorter than its past length"
            self.history[row] = [*self.history[row][:length], token]
            out.append(self._logits(self.history[row]))
        return np.stack(out)

    def move(self, src: int, dst: int, length: int) -> None:
        self.history[dst] = list(self.history[src][:length])


@pytest.fixture(scope="module")
def codec(tokenizer_path: Path) -> TextCodec:
    return TextCodec(tokenizer_path, VOCAB)


def make_engine(codec: TextCodec, runner: FakeRunner, max_queue: int = 16, prefill_chunk: int = 4) -> Engine:
    engine = Engine(runner, codec, (EOS, 151643), Metrics(runner.slots), max_queue=max_queue,
                    prefill_chunk=prefill_chunk)
    engine.start()
    return engine


def request(prompt: list[int], max_tokens: int = 12, stop: tuple[str, ...] = (), ignore_eos: bool = False,
            ) -> GenerationRequest:
    return GenerationRequest(prompt_ids=prompt, max_tokens=max_tokens, sampling=SamplingParams(temperature=0.0),
                             stop=stop, ignore_eos=ignore_eos)


async def result(generation: GenerationRequest) -> tuple[str, str]:
    assert generation.events is not None
    parts = []
    while True:
        kind, value = await generation.events.get()
        if kind == "text":
            parts.append(value)
        else:
            return "".join(parts), value


PROMPTS = [[1, 2, 3, 4, 5, 6, 7], [100, 200], [42] * 11, [7, 8, 9]]


def solo(codec: TextCodec, prompt: list[int], **kwargs) -> tuple[str, str]:
    engine = make_engine(codec, FakeRunner())

    async def run() -> tuple[str, str]:
        return await result(engine.submit(request(prompt, **kwargs)))

    try:
        return asyncio.run(run())
    finally:
        engine.stop()


def test_concurrent_requests_are_decoded_together_and_match_solo_runs(codec: TextCodec) -> None:
    expected = [solo(codec, p) for p in PROMPTS]
    runner = FakeRunner()
    engine = make_engine(codec, runner)

    async def run() -> list[tuple[str, str]]:
        generations = [engine.submit(request(p)) for p in PROMPTS]
        return list(await asyncio.gather(*(result(g) for g in generations)))

    try:
        got = asyncio.run(run())
    finally:
        engine.stop()
    assert got == expected
    assert all(reason == "length" and len(text) == 12 for text, reason in got)
    assert max(runner.batch_sizes) == 4, runner.batch_sizes
    # Fewer decode steps than one request after another would need.
    assert len(runner.batch_sizes) < sum(12 - 1 for _ in PROMPTS)


def test_a_late_request_joins_the_running_batch(codec: TextCodec) -> None:
    runner = FakeRunner(step_seconds=0.002)
    engine = make_engine(codec, runner)

    async def run() -> tuple[float, float]:
        long = engine.submit(request(PROMPTS[0], max_tokens=150))
        await asyncio.sleep(0.05)
        short = engine.submit(request(PROMPTS[1], max_tokens=5))
        done_at: dict[str, float] = {}

        async def wait(name: str, g: GenerationRequest) -> None:
            await result(g)
            done_at[name] = time.monotonic()

        await asyncio.gather(wait("long", long), wait("short", short))
        return done_at["short"], done_at["long"]

    try:
        short_done, long_done = asyncio.run(run())
    finally:
        engine.stop()
    assert short_done < long_done, "the late short request waited for the running one (static batching)"
    assert 2 in runner.batch_sizes


def test_cancelled_request_frees_its_slot_and_others_are_unaffected(codec: TextCodec) -> None:
    expected = [solo(codec, p, max_tokens=30) for p in PROMPTS]
    runner = FakeRunner(step_seconds=0.001)
    engine = make_engine(codec, runner)

    async def run() -> list[tuple[str, str]]:
        generations = [engine.submit(request(p, max_tokens=30)) for p in PROMPTS]
        assert generations[1].events is not None
        while generations[1].generated < 3:
            await asyncio.sleep(0.001)
        generations[1].cancel()
        return list(await asyncio.gather(*(result(g) for g in generations)))

    try:
        got = asyncio.run(run())
        assert engine.load()["running"] == 0
    finally:
        engine.stop()
    assert got[1][1] == "cancelled"
    for i in (0, 2, 3):
        assert got[i] == expected[i]


def test_queue_is_bounded(codec: TextCodec) -> None:
    runner = FakeRunner(slots=1, step_seconds=0.01)
    engine = make_engine(codec, runner, max_queue=1)

    async def run() -> None:
        first = engine.submit(request(PROMPTS[0], max_tokens=100))
        while first.generated == 0:  # the first holds the only slot
            await asyncio.sleep(0.001)
        second = engine.submit(request(PROMPTS[1], max_tokens=2))  # waits in the queue
        with pytest.raises(QueueFullError):
            engine.submit(request(PROMPTS[2], max_tokens=2))
        first.cancel()
        assert (await result(second))[1] == "length"

    try:
        asyncio.run(run())
        engine.drain()
        with pytest.raises(DrainingError):
            asyncio.run(_submit(engine))
    finally:
        engine.stop()


async def _submit(engine: Engine) -> None:
    engine.submit(request(PROMPTS[0]))


def test_eos_ends_a_request_unless_ignored(codec: TextCodec) -> None:
    text, reason = solo(codec, [5, 999, 6], max_tokens=20)
    assert (len(text), reason) == (3, "stop")
    text, reason = solo(codec, [5, 999, 6], max_tokens=20, ignore_eos=True)
    # It went on to max_tokens; the fake repeats EOS, which is a control token and never text.
    assert (len(text), reason) == (3, "length")


def test_stop_string_cuts_the_text_before_it(codec: TextCodec) -> None:
    full, _ = solo(codec, PROMPTS[0], max_tokens=12)
    stop = full[5:7]
    text, reason = solo(codec, PROMPTS[0], max_tokens=12, stop=(stop,))
    assert reason == "stop" and text == full[: full.index(stop)]


def test_context_limit_ends_a_request(codec: TextCodec) -> None:
    runner = FakeRunner(context=16)
    engine = make_engine(codec, runner)

    async def run() -> tuple[str, str]:
        return await result(engine.submit(request(list(range(1, 11)), max_tokens=100)))

    try:
        text, reason = asyncio.run(run())
    finally:
        engine.stop()
    assert reason == "length" and len(text) == 16 - 10 + 1


def test_a_failed_step_fails_its_requests_and_the_engine_keeps_serving(codec: TextCodec) -> None:
    runner = FakeRunner()
    engine = make_engine(codec, runner)

    async def run() -> tuple[str, tuple[str, str]]:
        runner.fail_next = True
        failed = engine.submit(request(PROMPTS[0]))
        assert failed.events is not None
        while True:
            kind, value = await failed.events.get()
            if kind == "error":
                break
        return value, await result(engine.submit(request(PROMPTS[1])))

    try:
        message, after = asyncio.run(run())
    finally:
        engine.stop()
    assert "simulated onnxruntime failure" in message
    assert after == solo(codec, PROMPTS[1])
