"""The onnxruntime runner on the real (tiny) model: rows of different lengths decoded together give the same
logits as each alone, chunked prefill equals one prefill, a moved cache row continues exactly, and greedy
tokens are those of onnxruntime-genai's own loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qwen3ops.ortserver.engine import OrtRunner
from qwen3ops.ortserver.model import ModelPackage

PROMPTS = [[151644, 872, 198, 9707, 1879], list(range(1, 12)), [500, 600], [7] * 7]
STEPS = 8


@pytest.fixture(scope="module")
def package(tiny_onnx: Path) -> ModelPackage:
    return ModelPackage.load(tiny_onnx)


def greedy_alone(runner: OrtRunner, prompt: list[int]) -> tuple[list[int], list[np.ndarray]]:
    logits = runner.prefill(0, prompt, 0)
    past = np.array([len(prompt)], np.int64)
    tokens, rows = [], [logits]
    for _ in range(STEPS):
        tokens.append(int(np.argmax(logits)))
        logits = runner.decode(np.array(tokens[-1:], np.int64), past)[0]
        past += 1
        rows.append(logits)
    return tokens, rows


def test_batched_rows_equal_single_runs(package: ModelPackage) -> None:
    runner = OrtRunner(package, slots=4, context=64, threads=1)
    alone = [greedy_alone(runner, p) for p in PROMPTS]
    last = [runner.prefill(slot, p, 0) for slot, p in enumerate(PROMPTS)]
    past = np.array([len(p) for p in PROMPTS], np.int64)
    tokens: list[list[int]] = [[] for _ in PROMPTS]
    for step in range(STEPS):
        for row in range(4):
            assert np.abs(last[row] - alone[row][1][step]).max() < 1e-4
            tokens[row].append(int(np.argmax(last[row])))
        last = list(runner.decode(np.array([t[-1] for t in tokens], np.int64), past))
        past += 1
    assert tokens == [a[0] for a in alone]


def test_chunked_prefill_and_moved_rows_continue_exactly(package: ModelPackage) -> None:
    runner = OrtRunner(package, slots=3, context=64, threads=1)
    prompt = list(range(100, 140))
    whole = runner.prefill(0, prompt, 0)
    runner.prefill(2, prompt[:16], 0)
    runner.prefill(2, prompt[16:32], 16)
    chunked = runner.prefill(2, prompt[32:], 32)
    assert np.abs(whole - chunked).max() < 1e-4
    token = np.array([int(np.argmax(whole))], np.int64)
    expected = runner.decode(token, np.array([40], np.int64))[0]  # slot 0
    runner.move(2, 0, 40)  # the chunked copy replaces slot 0 (one step longer there now: rewrite it)
    moved = runner.decode(token, np.array([40], np.int64))[0]
    assert np.abs(expected - moved).max() < 1e-4


def test_greedy_tokens_match_onnxruntime_genai(package: ModelPackage, tiny_onnx: Path) -> None:
    og = pytest.importorskip("onnxruntime_genai")
    runner = OrtRunner(package, slots=1, context=64, threads=1)
    model = og.Model(str(tiny_onnx))
    for prompt in PROMPTS:
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=False, max_length=64)
        generator = og.Generator(model, params)
        generator.append_tokens(np.array(prompt, np.int32))
        theirs = []
        for _ in range(STEPS):
            generator.generate_next_token()
            theirs.append(int(generator.get_next_tokens()[0]))
        assert greedy_alone(runner, prompt)[0] == theirs
