"""Sampling, stop strings, incremental detokenization and the chat template (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qwen3ops.ortserver.model import Detokenizer, StopMatcher, TextCodec
from qwen3ops.ortserver.sampling import SamplingParams, sample

VOCAB = 151936


@pytest.fixture(scope="module")
def codec(tokenizer_path: Path) -> TextCodec:
    return TextCodec(tokenizer_path, VOCAB)


def logits_with(peaks: dict[int, float], size: int = 1000) -> np.ndarray:
    row = np.full(size, -5.0, np.float32)
    for index, value in peaks.items():
        row[index] = value
    return row


def test_greedy_picks_the_maximum() -> None:
    row = logits_with({17: 3.0, 5: 2.9})
    assert sample(row, SamplingParams(temperature=0.0), np.random.default_rng()) == 17
    assert sample(row, SamplingParams(temperature=1.0, top_k=1), np.random.default_rng()) == 17


def test_top_k_and_top_p_restrict_the_candidates() -> None:
    row = logits_with({1: 2.0, 2: 2.0, 3: 2.0, 4: 1.9})
    params = SamplingParams(temperature=1.0, top_k=3, seed=1)
    rng = params.rng()
    assert {sample(row, params, rng) for _ in range(300)} == {1, 2, 3}
    # top_p: token 7 alone holds ~52 % of the mass, so top_p 0.5 keeps only it; top_p 1 keeps everything.
    row = logits_with({7: 2.0}, size=1000)
    assert {sample(row, SamplingParams(temperature=1.0, top_p=0.5), np.random.default_rng(0))
            for _ in range(100)} == {7}
    seen = {sample(row, SamplingParams(temperature=1.0, top_p=1.0), np.random.default_rng(i)) for i in range(200)}
    assert len(seen) > 5


def test_nucleus_over_the_full_vocabulary_matches_a_full_sort() -> None:
    rng = np.random.default_rng(3)
    row = rng.normal(0, 3, VOCAB).astype(np.float32)
    params = SamplingParams(temperature=0.7, top_p=0.9)
    probs = np.exp((row.astype(np.float64) - row.max()) / 0.7)
    probs /= probs.sum()
    order = np.argsort(-probs)
    allowed = set(order[: int(np.searchsorted(np.cumsum(probs[order]), 0.9)) + 1].tolist())
    draws = {sample(row, params, np.random.default_rng(i)) for i in range(200)}
    assert draws <= allowed


def test_same_seed_same_tokens_and_temperature_spreads() -> None:
    row = np.random.default_rng(0).normal(0, 1, 5000).astype(np.float32)
    params = SamplingParams(temperature=1.0, seed=1234)
    first = [sample(row, params, r) for r in [params.rng()] for _ in range(50)]
    rng = params.rng()
    assert [sample(row, params, rng) for _ in range(50)] == first
    cold = SamplingParams(temperature=0.05)
    hot = SamplingParams(temperature=2.0)
    cold_draws = {sample(row, cold, np.random.default_rng(i)) for i in range(100)}
    hot_draws = {sample(row, hot, np.random.default_rng(i)) for i in range(100)}
    assert len(cold_draws) < len(hot_draws)


def test_stop_matcher_holds_back_partial_matches_and_cuts_at_the_stop() -> None:
    matcher = StopMatcher(("END", "\n\n"))
    assert matcher.feed("Hello E") == ("Hello ", False)
    assert matcher.feed("N") == ("", False)
    assert matcher.feed("Dless") == ("", True)
    matcher = StopMatcher(("stop here",))
    assert matcher.feed("a stop") == ("a ", False)
    assert matcher.feed("ping") == ("stopping", False)
    assert matcher.flush() == ""
    assert StopMatcher(()).feed("anything") == ("anything", False)


def test_detokenizer_completes_split_characters_and_replaces_invalid_bytes(codec: TextCodec) -> None:
    text = "你好，世界! 🤖 ok <think>x</think>"
    ids = codec.encode(text)
    detok = Detokenizer(codec)
    pieces = [detok.add(i) for i in ids] + [detok.flush()]
    assert "".join(pieces) == text
    assert "" in pieces  # the emoji spans tokens: nothing is emitted until it is complete
    # A lone continuation byte (token 244 is byte 0xB4... as a single byte-level token) never raises and
    # never swallows the text after it.
    lone = codec.encode("\u00b4")  # two bytes; take the second alone
    detok = Detokenizer(codec)
    out = "".join(detok.add(i) for i in [*ids[:1], 244, *codec.encode(" ok")]) + detok.flush()
    assert out.endswith(" ok") and "\ufffd" in out and lone
    # Special tokens are control tokens; ids past the tokenizer's vocabulary are nothing.
    assert codec.decode([151645, 151643, 151900]) == ""
    assert codec.decode(codec.encode("<think>")) == "<think>"


def test_chat_template_renders_like_transformers(codec: TextCodec, tokenizer_path: Path) -> None:
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(str(tokenizer_path))
    conversations = [
        [{"role": "user", "content": "Hello <b>&'\"</b> 你好"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
         {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nHello!"}, {"role": "user", "content": "Again"}],
    ]
    for messages in conversations:
        for thinking in (None, False):
            kwargs = {} if thinking is None else {"enable_thinking": thinking}
            expected = reference.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)
            assert codec.render_chat(messages, True, thinking) == expected
    assert json.loads(json.dumps(codec.encode("<|im_start|>user"))) == [151644, 872]
