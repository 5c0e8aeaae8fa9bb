"""The search: coordinate descent over the dimensions, successive halving within each.

The full grid of the knobs is thousands of configurations, each a server start and a minute of
load; the search measures a few dozen:

- **Coordinate descent.** Start from the roles' defaults. Take the dimensions in priority order;
  along each, try every value with the other settings held at the best found so far, keep the
  winner, move to the next dimension. A dimension whose values have all been measured before (in
  this run or an earlier one: the cache) costs nothing.
- **Successive halving within a dimension.** Every value is first measured on one chunk of
  requests; values that failed, broke the memory limit, missed the SLO's percentiles while others
  met them, or trail the leader by more than `drop_margin` are dropped, and the better half goes
  on; survivors are measured on more chunks (the first chunks are reused, only the new ones are
  run) until at most two remain at `final_chunks` chunks. The decision is made on the most-measured
  figures. Dimensions marked `screen` (their values move memory, hardly speed) decide on one chunk.
- **Ranking.** Feasible (ran, within the memory limit) first; then meeting the SLO at the 95th
  percentile; then goodput (requests per second that met the SLO); then raw requests per second.
- **Noise and ties.** A challenger replaces the incumbent only when its goodput is higher by more
  than `tolerance`. Within that tolerance a memory dimension (KV cache type, context bound, load
  mode, instances, prompt cache) picks the value that uses less memory; other dimensions keep the
  incumbent (or take more raw throughput when nothing meets the SLO).
- **Budget.** The search stops before a new dimension once `time_budget_s` is spent and reports the
  dimensions it did not reach.

The measurement is a function passed in (`Evaluate`): the real one starts servers and drives the
load generator (benchmarks.tune.measure); unit tests pass a fake.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.tune.space import Dimension, Host, Settings


@dataclass(frozen=True)
class Evaluation:
    """What the search needs to know about a configuration measured on `chunks` chunks of requests."""

    settings: Settings
    chunks: int
    goodput: float  # completed requests per second that met the SLO
    throughput: float  # completed requests per second
    memory_bytes: float | None  # peak resident memory, all instances together
    error: str | None = None
    slo_met: bool = True  # the SLO's percentile limits hold (e.g. TTFT p95, TPOT p95)
    reused: bool = False  # every chunk came from the cache
    details: dict[str, Any] = field(default_factory=dict, compare=False)


Evaluate = Callable[[Settings, int], Evaluation]
# Memory figures closer than this (relative) are taken as equal.
MEMORY_TOLERANCE = 0.03


@dataclass
class Step:
    """One dimension of the descent: what was tried and what won."""

    dimension: str
    incumbent: Settings
    winner: Settings
    tried: list[Evaluation]
    reason: str


@dataclass
class SearchResult:
    best: Evaluation
    steps: list[Step]
    evaluations: list[Evaluation]
    skipped: list[str]
    elapsed_s: float

    @property
    def measured_configurations(self) -> int:
        return len({e.settings for e in self.evaluations})


@dataclass(frozen=True)
class Policy:
    """How the search decides and how much it may spend."""

    memory_limit_bytes: float | None = None
    final_chunks: int = 2
    tolerance: float = 0.05  # relative goodput difference treated as noise
    drop_margin: float = 0.25  # after one chunk, values below (1 - this) x the leader are dropped
    time_budget_s: float | None = None
    passes: int = 1

    def feasible(self, e: Evaluation) -> bool:
        if e.error:
            return False
        return not (self.memory_limit_bytes and e.memory_bytes and e.memory_bytes > self.memory_limit_bytes)


def _key(e: Evaluation, policy: Policy) -> tuple[bool, float, float]:
    """Ranking key: feasible first, then meeting the SLO's percentiles, then goodput, then raw throughput."""
    if not policy.feasible(e):
        return (False, -1.0, -1.0)
    return (e.slo_met, e.goodput, e.throughput)


def _close(a: float, b: float, tolerance: float) -> bool:
    top = max(a, b)
    return top == 0 or abs(a - b) <= tolerance * top


def decide(incumbent: Evaluation | None, finalists: list[Evaluation], policy: Policy,
           memory_dimension: bool) -> tuple[Evaluation, str]:
    """The winner among finalists (each measured on the same number of chunks) and why."""
    feasible = [e for e in finalists if policy.feasible(e)]
    if not feasible:
        fallback = incumbent or finalists[0]
        return fallback, "no value was feasible (failed or over the memory limit); kept the incumbent"
    feasible = [e for e in feasible if e.slo_met] or feasible
    leader = max(feasible, key=lambda e: _key(e, policy))
    tied = [e for e in feasible if _close(e.goodput, leader.goodput, policy.tolerance)]
    if len(tied) == 1:
        return leader, "highest goodput"
    if memory_dimension:
        with_memory = [e for e in tied if e.memory_bytes is not None]
        if with_memory:
            lightest = min(with_memory, key=lambda e: e.memory_bytes or 0.0)
            heaviest = max(with_memory, key=lambda e: e.memory_bytes or 0.0)
            if not _close(lightest.memory_bytes or 0.0, heaviest.memory_bytes or 0.0, MEMORY_TOLERANCE):
                return lightest, (f"goodput within {policy.tolerance:.0%} of the best: the value that uses "
                                  "least memory")
    inc = next((e for e in tied if incumbent is not None and e.settings == incumbent.settings), None)
    if leader.goodput == 0:
        best_raw = max(tied, key=lambda e: e.throughput)
        if inc is None or not _close(best_raw.throughput, inc.throughput, policy.tolerance):
            return best_raw, "nothing met the SLO: highest raw throughput"
    if inc is not None:
        return inc, f"no value beat the incumbent by more than {policy.tolerance:.0%}"
    return leader, "highest goodput"


def halving(candidates: list[Settings], evaluate: Evaluate, policy: Policy, memory_dimension: bool,
            final_chunks: int | None = None) -> tuple[list[Evaluation], list[Evaluation]]:
    """Successive halving over candidates. Returns (the finalists' last evaluations, every evaluation).

    Each round measures the pool on `chunks` chunks, drops what failed, broke the memory limit, missed
    the SLO's percentiles while others met them, or trails the leader by more than `drop_margin`; the
    better half goes on with twice the chunks (a memory dimension keeps every value tied with the
    leader, so the lighter one can still win), until two or fewer are left on `final_chunks` chunks."""
    final = final_chunks or policy.final_chunks
    pool = list(candidates)
    chunks = 1
    history: list[Evaluation] = []
    while True:
        evaluations = [evaluate(s, chunks) for s in pool]
        history.extend(evaluations)
        if len(pool) <= 1 or (len(pool) <= 2 and chunks >= final):
            return evaluations, history
        ranked = sorted((e for e in evaluations if policy.feasible(e)), key=lambda e: _key(e, policy), reverse=True)
        if not ranked:
            return evaluations, history
        leader = ranked[0]
        if leader.slo_met:
            ranked = [e for e in ranked if e.slo_met]
        measure = (lambda e: e.goodput) if leader.goodput > 0 else (lambda e: e.throughput)
        ranked = [e for e in ranked if measure(e) >= (1 - policy.drop_margin) * measure(leader)]
        if chunks >= final:
            return ranked, history
        half = ranked if len(ranked) <= 2 else ranked[: math.ceil(len(pool) / 2)]
        if memory_dimension:
            half += [e for e in ranked[len(half):] if _close(e.goodput, leader.goodput, policy.tolerance)]
        if len(half) == 1:  # a clear winner: it is measured on more chunks later (as the next incumbent)
            return half, history
        pool = [e.settings for e in half]
        chunks = min(final, chunks * 2)


def coordinate_descent(start: Settings, dimensions: list[Dimension], host: Host, evaluate: Evaluate,
                       policy: Policy, on_step: Callable[[Step], None] | None = None) -> SearchResult:
    """Search from `start` along `dimensions` (in order, `policy.passes` times)."""
    started = time.monotonic()
    current = start
    steps: list[Step] = []
    evaluations: list[Evaluation] = []
    skipped: list[str] = []
    incumbent_eval: Evaluation | None = None
    for _ in range(policy.passes):
        for dim in dimensions:
            if policy.time_budget_s is not None and time.monotonic() - started > policy.time_budget_s:
                skipped.append(dim.name)
                continue
            candidates = dim.candidates(current, host)
            if current not in candidates:
                candidates.insert(0, current)
            if len(candidates) < 2:
                continue
            finalists, history = halving(candidates, evaluate, policy, dim.memory, 1 if dim.screen else None)
            evaluations.extend(history)
            incumbent_eval = max((e for e in history if e.settings == current), key=lambda e: e.chunks, default=None)
            winner, reason = decide(incumbent_eval, finalists, policy, dim.memory)
            step = Step(dim.name, current, winner.settings, history, reason)
            steps.append(step)
            if on_step:
                on_step(step)
            current = winner.settings
    best = evaluate(current, policy.final_chunks)
    evaluations.append(best)
    return SearchResult(best=best, steps=steps, evaluations=evaluations, skipped=skipped,
                        elapsed_s=time.monotonic() - started)
