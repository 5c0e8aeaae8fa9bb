"""Per-level metrics from per-request records, the way vLLM's `bench serve` and GuideLLM define them.

- latency (end-to-end): request sent -> last byte; TTFT: request sent -> first content chunk;
- TPOT (time per output token, per request): (latency - TTFT) / (output tokens - 1);
- ITL (inter-token latency): every gap between consecutive content chunks, over all requests;
- throughput: completed requests, input and output tokens per second of the level's wall time
  (first request sent -> last request finished; warm-up excluded);
- goodput: completed requests per second that met every limit of the SLO.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class Slo:
    """Service-level objective: each limit in seconds, None = not part of the SLO."""

    ttft: float | None = None
    tpot: float | None = None
    latency: float | None = None

    def met(self, record: dict[str, Any]) -> bool:
        if not record["ok"]:
            return False
        checks = ((self.ttft, record.get("ttft")), (self.tpot, record.get("tpot")), (self.latency, record["latency"]))
        return all(limit is None or (value is not None and value <= limit) for limit, value in checks)

    def as_dict(self) -> dict[str, float | None]:
        return {"ttft": self.ttft, "tpot": self.tpot, "latency": self.latency}


def tpot(latency: float, ttft: float | None, output_tokens: int | None) -> float | None:
    if ttft is None or not output_tokens or output_tokens < 2:
        return None
    return (latency - ttft) / (output_tokens - 1)


def distribution(values: list[float], prefix: str) -> dict[str, float | None]:
    """mean, p50/p90/p95/p99 and max of values (linear interpolation); None for an empty list."""
    clean = [v for v in values if v is not None and not math.isnan(v)]
    out: dict[str, float | None] = {}
    if not clean:
        for key in ("mean", *(f"p{p}" for p in PERCENTILES), "max"):
            out[f"{prefix}_{key}"] = None
        return out
    arr = np.asarray(clean, dtype=float)
    out[f"{prefix}_mean"] = float(arr.mean())
    for p in PERCENTILES:
        out[f"{prefix}_p{p}"] = float(np.percentile(arr, p))
    out[f"{prefix}_max"] = float(arr.max())
    return out


def summarize(records: list[dict[str, Any]], slo: Slo | None = None) -> dict[str, Any]:
    """The summary of one level. Records carry: ok, error, start, end, latency, ttft, tpot, itl (list),
    prompt_tokens, output_tokens."""
    slo = slo or Slo()
    ok = [r for r in records if r["ok"]]
    failed = [r for r in records if not r["ok"]]
    wall = max(r["end"] for r in records) - min(r["start"] for r in records) if records else 0.0
    rate = (lambda x: x / wall) if wall > 0 else (lambda x: 0.0)
    input_tokens = sum(r["prompt_tokens"] or 0 for r in ok)
    output_tokens = sum(r["output_tokens"] or 0 for r in ok)
    good = sum(1 for r in ok if slo.met(r))
    summary: dict[str, Any] = {
        "requests": len(records),
        "completed": len(ok),
        "failed": len(failed),
        "errors": dict(Counter(r["error"] or "unknown" for r in failed)),
        "duration_s": wall,
        "request_throughput": rate(len(ok)),
        "input_throughput": rate(input_tokens),
        "output_throughput": rate(output_tokens),
        "total_input_tokens": input_tokens,
        "total_output_tokens": output_tokens,
        "goodput": rate(good),
        "slo_attainment": good / len(records) if records else 0.0,
    }
    summary.update(distribution([r["latency"] for r in ok], "latency"))
    summary.update(distribution([r["ttft"] for r in ok], "ttft"))
    summary.update(distribution([r["tpot"] for r in ok], "tpot"))
    summary.update(distribution([gap for r in ok for gap in r.get("itl") or []], "itl"))
    return summary
