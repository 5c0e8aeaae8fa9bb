"""Metric computation from a recorded event trace with known answers."""

import pytest

from benchmarks.loadgen import Level, record
from benchmarks.metrics import Slo, distribution, summarize, tpot
from benchmarks.workload import Request
from qwen3ops.client import StreamResult


def trace(start: float, first: float, gaps: list[float], ok: bool = True, error: str | None = None) -> StreamResult:
    """A request sent at `start`, first chunk after `first` s, then chunks `gaps` apart, done at the last chunk."""
    times = [start + first]
    for gap in gaps:
        times.append(times[-1] + gap)
    return StreamResult(ok=ok, error=error, start=start, end=times[-1] if ok else start + first, chunk_times=times
                        if ok else [], completion_tokens=len(times) if ok else None, prompt_tokens=100)


def test_record_times_a_stream() -> None:
    req = Request(0, [{"role": "user", "content": "x"}], 100, 5)
    r = record(trace(10.0, 0.5, [0.1, 0.1, 0.2, 0.2]), req, Level(concurrency=1), t0=10.0)
    assert r["start"] == 0.0 and r["ttft"] == pytest.approx(0.5)
    assert r["latency"] == pytest.approx(1.1)
    assert r["output_tokens"] == 5
    assert r["tpot"] == pytest.approx(0.6 / 4)  # (latency - ttft) / (tokens - 1)
    assert r["itl"] == pytest.approx([0.1, 0.1, 0.2, 0.2])


def test_summary_of_a_known_trace() -> None:
    req = Request(0, [], 100, 5)
    level = Level(concurrency=2)
    results = [trace(0.0, 0.5, [0.1] * 4), trace(0.0, 1.0, [0.2] * 4), trace(1.0, 0.4, [0.1] * 4),
               trace(1.5, 0.3, [], ok=False, error="http_503")]
    records = [record(r, req, level, t0=0.0) for r in results]
    s = summarize(records, Slo(ttft=0.6, tpot=0.15))
    assert s["requests"] == 4 and s["completed"] == 3 and s["failed"] == 1
    assert s["errors"] == {"http_503": 1}
    # wall: first start 0.0 -> last end max(0.9, 1.8, 1.8, 1.8) = 1.8
    assert s["duration_s"] == pytest.approx(1.8)
    assert s["request_throughput"] == pytest.approx(3 / 1.8)
    assert s["output_throughput"] == pytest.approx(15 / 1.8)
    assert s["input_throughput"] == pytest.approx(300 / 1.8)
    assert s["ttft_mean"] == pytest.approx((0.5 + 1.0 + 0.4) / 3)
    assert s["ttft_p50"] == pytest.approx(0.5)
    # SLO met by requests 1 and 3 (request 2: TTFT 1.0 > 0.6; request 4 failed)
    assert s["goodput"] == pytest.approx(2 / 1.8)
    assert s["slo_attainment"] == pytest.approx(0.5)
    assert s["itl_p50"] == pytest.approx(0.1)


def test_percentiles_interpolate_and_handle_empty_and_single() -> None:
    d = distribution([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "x")
    assert d["x_p50"] == pytest.approx(5.5)
    assert d["x_p90"] == pytest.approx(9.1)
    assert d["x_p99"] == pytest.approx(9.91)
    assert d["x_max"] == 10
    assert distribution([], "x")["x_p99"] is None
    assert distribution([2.0], "x")["x_p95"] == 2.0


def test_goodput_edge_cases() -> None:
    assert summarize([])["goodput"] == 0.0 and summarize([])["request_throughput"] == 0.0
    req = Request(0, [], 10, 1)
    one_token = record(trace(0.0, 0.2, []), req, Level(concurrency=1), 0.0)
    assert one_token["tpot"] is None  # a single token has no time per output token
    assert Slo(tpot=0.01).met(one_token) is False  # an SLO on TPOT cannot be judged met without one
    assert Slo(ttft=0.5).met(one_token) is True
    assert Slo().met(one_token) is True
    all_failed = [record(trace(0.0, 0.1, [], ok=False, error="timeout"), req, Level(concurrency=1), 0.0)]
    s = summarize(all_failed, Slo(ttft=1))
    assert s["goodput"] == 0.0 and s["errors"] == {"timeout": 1} and s["ttft_p50"] is None


def test_tpot_definition() -> None:
    assert tpot(2.0, 0.5, 4) == pytest.approx(0.5)
    assert tpot(2.0, None, 4) is None
    assert tpot(2.0, 0.5, 1) is None
