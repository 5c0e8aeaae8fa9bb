"""The search logic, driven by a fake measurement function (unit tests: no server is started)."""

from __future__ import annotations

import itertools
import math
from collections import Counter

from benchmarks.tune import search, space

HOST = space.Host(cpus=2, memory_bytes=24 * 2**30)
NEEDS = space.Needs(max_prompt_tokens=400, max_output_tokens=64)
GIB = 2**30


class FakeMeasure:
    """A fake measurement: goodput and memory are a known function of the settings; it counts calls.

    The optimum is q4_k_m, 2 slots, 1 instance, ubatch 256, flash attention on; the memory dimensions
    change memory only (q8_0 KV cache and the bounded context use less).
    """

    def __init__(self, slo_fails: set[int] | None = None) -> None:
        self.calls: Counter[tuple[space.Settings, int]] = Counter()
        self.slo_fails = slo_fails or set()

    def goodput(self, s: space.Settings) -> float:
        value = {"q4_k_m": 1.0, "q8_0": 0.7, "f16": 0.4}[s.quant]
        value *= {1: 0.6, 2: 1.0, 4: 0.9, 8: 0.5}[s.parallel or 4]
        value *= {1: 1.0, 2: 0.8}[s.instances]
        value *= {128: 0.8, 256: 1.0, 512: 0.9}[s.ubatch_size or 512]
        value *= {"on": 1.0, "off": 0.8, "auto": 0.9}[s.flash_attn or "auto"]
        value *= {1: 0.5, 2: 1.0}[s.threads or 2]
        return value

    def memory(self, s: space.Settings) -> float:
        weights = {"q4_k_m": 0.4, "q8_0": 0.7, "f16": 1.2}[s.quant] * GIB
        kv = (s.parallel or 4) * (s.ctx_per_slot or 4096) * 112 * 1024 * (0.5 if s.cache_type_k == "q8_0" else 1.0)
        private = 0.3 * GIB if s.load_mode == "none" else 0.0
        return s.instances * (weights + kv + private)

    def __call__(self, settings: space.Settings, chunks: int) -> search.Evaluation:
        self.calls[(settings, chunks)] += 1
        g = self.goodput(settings)
        return search.Evaluation(settings, chunks, g, g * 1.1, self.memory(settings),
                                 slo_met=(settings.parallel or 4) not in self.slo_fails)


def grid_size() -> int:
    dims = space.llamacpp_dimensions(NEEDS)
    start = space.baseline("llamacpp", HOST, NEEDS)
    sizes = [len(d.candidates(start, HOST)) for d in dims]
    return math.prod(sizes)


def test_finds_the_optimum_without_the_full_grid() -> None:
    fake = FakeMeasure()
    start = space.baseline("llamacpp", HOST, NEEDS)
    result = search.coordinate_descent(start, space.llamacpp_dimensions(NEEDS), HOST, fake, search.Policy())
    best = result.best.settings
    assert (best.quant, best.parallel, best.instances, best.ubatch_size, best.flash_attn, best.threads) == \
        ("q4_k_m", 2, 1, 256, "on", 2)
    configurations = {s for s, _ in fake.calls}
    assert len(configurations) < grid_size() / 50  # a few dozen, not thousands
    assert len(configurations) < 40


def test_memory_dimensions_take_the_lighter_value_when_goodput_ties() -> None:
    result = search.coordinate_descent(space.baseline("llamacpp", HOST, NEEDS), space.llamacpp_dimensions(NEEDS),
                                       HOST, FakeMeasure(), search.Policy())
    best = result.best.settings
    assert best.cache_type_k == "q8_0" and best.cache_type_v == "q8_0"  # half the KV cache, same goodput
    assert best.ctx_per_slot == NEEDS.ctx_per_slot == 1024  # the workload's bound, not 4096
    assert best.load_mode != "none"  # reading the weights into private memory costs 0.3 GiB here
    reasons = {s.dimension: s.reason for s in result.steps}
    assert "least memory" in reasons["kv_cache"]


def test_the_memory_limit_is_never_exceeded() -> None:
    fake = FakeMeasure()
    limit = 0.6 * GIB  # q8_0 and f16 weights do not fit; neither do 8 slots at 4096 tokens
    result = search.coordinate_descent(space.baseline("llamacpp", HOST, NEEDS), space.llamacpp_dimensions(NEEDS),
                                       HOST, fake, search.Policy(memory_limit_bytes=limit))
    assert result.best.memory_bytes <= limit
    for step in result.steps:
        assert fake.memory(step.winner) <= limit or step.winner == step.incumbent


def test_a_challenger_within_the_noise_does_not_replace_the_incumbent() -> None:
    start = space.baseline("llamacpp", HOST, NEEDS).replace(flash_attn="auto")
    incumbent = search.Evaluation(start, 2, 1.00, 1.1, GIB)
    challenger = search.Evaluation(start.replace(flash_attn="on"), 2, 1.03, 1.1, GIB)
    winner, reason = search.decide(incumbent, [incumbent, challenger], search.Policy(tolerance=0.05), False)
    assert winner.settings == start and "incumbent" in reason
    clear = search.Evaluation(start.replace(flash_attn="on"), 2, 1.2, 1.3, GIB)
    assert search.decide(incumbent, [incumbent, clear], search.Policy(tolerance=0.05), False)[0] is clear


def test_values_that_miss_the_slo_percentiles_lose_to_values_that_meet_them() -> None:
    fake = FakeMeasure(slo_fails={2})  # 2 slots has the most goodput but its p95 misses the SLO
    result = search.coordinate_descent(space.baseline("llamacpp", HOST, NEEDS),
                                       [d for d in space.llamacpp_dimensions(NEEDS) if d.name == "parallel"],
                                       HOST, fake, search.Policy())
    assert result.best.settings.parallel == 4


def test_successive_halving_drops_clear_losers_after_one_chunk_and_reuses_it() -> None:
    fake = FakeMeasure()
    quant = next(d for d in space.llamacpp_dimensions(NEEDS) if d.name == "quant")
    start = space.baseline("llamacpp", HOST, NEEDS)
    finalists, _ = search.halving(quant.candidates(start, HOST), fake, search.Policy(), False)
    measured = Counter(s.quant for s, _ in fake.calls)
    assert measured == {"q4_k_m": 1, "q8_0": 1, "f16": 1}  # q8_0 (0.7) and f16 (0.4) trail by > 25%: dropped
    assert [e.settings.quant for e in finalists] == ["q4_k_m"]
    parallel = next(d for d in space.llamacpp_dimensions(NEEDS) if d.name == "parallel")
    fake = FakeMeasure()
    finalists, _ = search.halving(parallel.candidates(start, HOST), fake, search.Policy(final_chunks=2), False)
    # 2 and 4 slots are close (1.0 vs 0.9): both go on to the second chunk, the others stop at one.
    assert {(s.parallel, c) for s, c in fake.calls} == {(1, 1), (2, 1), (4, 1), (8, 1), (2, 2), (4, 2)}
    assert {e.settings.parallel for e in finalists} == {2, 4}


def test_screened_dimensions_decide_on_one_chunk() -> None:
    fake = FakeMeasure()
    kv = next(d for d in space.llamacpp_dimensions(NEEDS) if d.name == "kv_cache")
    assert kv.screen and kv.memory
    result = search.coordinate_descent(space.baseline("llamacpp", HOST, NEEDS), [kv], HOST, fake, search.Policy())
    assert [e.chunks for e in result.steps[0].tried] == [1, 1]
    assert result.best.chunks == 2  # the chosen configuration itself is measured on the final chunks


def test_the_time_budget_stops_before_a_new_dimension() -> None:
    result = search.coordinate_descent(space.baseline("llamacpp", HOST, NEEDS), space.llamacpp_dimensions(NEEDS),
                                       HOST, FakeMeasure(), search.Policy(time_budget_s=-1))
    assert result.steps == [] and result.skipped == [d.name for d in space.llamacpp_dimensions(NEEDS)]


def test_invalid_combinations_are_never_proposed() -> None:
    start = space.baseline("llamacpp", HOST, NEEDS).replace(flash_attn="off")
    kv = next(d for d in space.llamacpp_dimensions(NEEDS) if d.name == "kv_cache")
    assert [c.cache_type_v for c in kv.candidates(start, HOST)] == ["f16"]  # q8_0 V needs flash attention
    ub = next(d for d in space.llamacpp_dimensions(NEEDS) if d.name == "ubatch_size")
    for candidate in ub.candidates(start.replace(batch_size=128), HOST):
        assert (candidate.ubatch_size or 0) <= (candidate.batch_size or 0)
    for a, b in itertools.product(space.LLAMACPP_QUANTS, ["on", "off", "auto"]):
        assert not space.Settings(quant=a, flash_attn=b).problems()
