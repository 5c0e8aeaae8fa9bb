from pathlib import Path

import pytest

from benchmarks.workload import Workload, build_requests
from qwen3ops.errors import UserError
from qwen3ops.tokenizer import count_tokens


def test_prompts_follow_the_length_distribution_in_real_tokens(tokenizer_path: Path) -> None:
    workload = Workload.load("callcentre-zh")
    requests = build_requests(workload, 24, str(tokenizer_path))
    lengths = [r.prompt_tokens for r in requests]
    assert all(96 - 8 <= n <= 400 for n in lengths)
    assert 180 <= sum(lengths) / len(lengths) <= 260  # mean 220
    assert all(r.max_tokens == 64 for r in requests)
    for r in requests[:3]:  # the recorded count is the real tokenizer's count of the messages
        assert r.prompt_tokens == sum(count_tokens(m["content"], str(tokenizer_path)) for m in r.messages)
    users = [r.messages[-1]["content"] for r in requests]
    assert len(set(users)) == len(users)  # no accidental prompt-cache hits
    assert any("客户" in u for u in users)


def test_shared_prefix_is_identical_across_requests(tokenizer_path: Path) -> None:
    requests = build_requests(Workload.load("callcentre-zh-cached"), 4, str(tokenizer_path))
    prefixes = {r.messages[-1]["content"].split("通话记录（编号")[0] for r in requests}
    assert len(prefixes) == 1 and count_tokens(prefixes.pop(), str(tokenizer_path)) >= 150


def test_unknown_workload_lists_the_known_ones() -> None:
    with pytest.raises(UserError, match="callcentre-zh"):
        Workload.load("nope")


def test_invalid_workload_file_says_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\n")
    with pytest.raises(UserError, match="invalid workload"):
        Workload.load(str(bad))


def test_warm_up_request_shares_no_prefix_with_the_measured_one() -> None:
    """The warm-up must not leave a cached prompt that a measured request reuses (TTFT would look free)."""
    from benchmarks.loadgen import warmup_request
    from benchmarks.workload import Request

    measured = Request(index=3, messages=[{"role": "system", "content": "你是客服"},
                                          {"role": "user", "content": "话费多扣了"}],
                       prompt_tokens=10, max_tokens=8)
    warm = warmup_request(measured, 0)
    assert warm.messages[0]["content"] != measured.messages[0]["content"]
    assert not warm.messages[0]["content"].startswith(measured.messages[0]["content"][:1])
    assert measured.messages[0]["content"] == "你是客服"  # the measured request is untouched
    assert warm.messages[1:] == measured.messages[1:] and warm.max_tokens == measured.max_tokens
