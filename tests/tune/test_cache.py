"""Measurement reuse: chunks are cached by everything that could change them (unit tests, fake runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import metrics
from benchmarks.tune import space
from benchmarks.tune.cache import MeasurementCache
from benchmarks.tune.measure import Measurer, Plan, aggregate
from benchmarks.tune.models import Artifact
from benchmarks.workload import Workload


class FakeModels:
    """Stands in for benchmarks.tune.models.Models: artifacts with a given sha256, nothing on disk."""

    def __init__(self, sha: str = "a" * 64) -> None:
        self.sha = sha

    def artifact(self, backend: str, quant: str) -> Artifact:
        return Artifact(backend, quant, Path(f"/nowhere/{quant}.gguf"), self.sha + quant, 100 * 2**20, "fake", True)


class FakeRunMeasurer(Measurer):
    """A Measurer whose server runs are fake: each chunk's records are made up; runs are counted."""

    runs: list[tuple[space.Settings, list[tuple[int, int]]]]

    def _run(self, settings, artifact, wanted):  # type: ignore[override]
        self.runs.append((settings, list(wanted)))
        chunks = []
        for concurrency, index in wanted:
            records = [{"ok": True, "error": None, "start": i * 1.0, "end": i * 1.0 + 2.0, "latency": 2.0,
                        "ttft": 0.5 + 0.1 * index + 0.01 * i, "tpot": 0.02, "prompt_tokens": 200, "output_tokens": 64}
                       for i in range(self.plan.chunk_requests(concurrency))]
            chunks.append({"records": records, "duration_s": 10.0, "measured_at": "2026-01-01T00:00:00+00:00",
                           "resources": {"rss_peak_bytes": 500 * 2**20, "rss_peak_per_instance_bytes": 500 * 2**20,
                                         "rss_idle_bytes": 400 * 2**20, "pss_bytes": 450 * 2**20,
                                         "cpu_percent_mean": 190.0},
                           "start_s": 1.0})
        return chunks


@pytest.fixture
def binary(tmp_path: Path) -> Path:
    path = tmp_path / "build-x" / "bin" / "llama-server"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not really llama-server")
    return path


def make(tmp_path: Path, binary: Path, workload: str = "short-chat", models: FakeModels | None = None,
         plan: Plan | None = None) -> FakeRunMeasurer:
    m = FakeRunMeasurer(models or FakeModels(), Workload.load(workload), binary=binary,  # type: ignore[arg-type]
                        cache=MeasurementCache(tmp_path / "cache"), plan=plan or Plan(), port_base=18100,
                        log_dir=tmp_path / "logs")
    m.runs = []
    return m


SETTINGS = space.Settings(quant="q4_k_m", threads=2, threads_batch=2, parallel=2, ctx_per_slot=1024)
SLO = metrics.Slo(ttft=0.55, tpot=0.1)


def test_more_chunks_run_only_the_new_ones_and_a_rerun_runs_nothing(tmp_path: Path, binary: Path) -> None:
    first = make(tmp_path, binary)
    chunks, reused = first.chunks(SETTINGS, 1)
    assert reused == 0 and len(first.runs) == 1 and first.runs[0][1] == [(2, 0)]
    chunks, reused = first.chunks(SETTINGS, 2)  # successive halving asks for a second chunk
    assert reused == 1 and first.runs[1][1] == [(2, 1)] and len(chunks) == 2

    again = make(tmp_path, binary)  # a new process, the same cache: nothing is measured
    result = again.result(SETTINGS, 2, SLO)
    assert again.runs == [] and result["reused_chunks"] == 2 and again.measured_chunks == 0
    assert result["requests"] == 8 and result["completed"] == 8


def test_a_different_slo_reuses_the_records(tmp_path: Path, binary: Path) -> None:
    m = make(tmp_path, binary)
    strict = m.result(SETTINGS, 1, metrics.Slo(ttft=0.52))
    loose = m.result(SETTINGS, 1, metrics.Slo(ttft=5.0))
    assert len(m.runs) == 1
    assert loose["goodput"] > strict["goodput"] > 0  # the SLO is applied to the stored records


@pytest.mark.parametrize("change", ["settings", "workload", "engine", "artifact", "load", "plan"])
def test_anything_that_could_change_a_measurement_misses_the_cache(tmp_path: Path, binary: Path, change: str) -> None:
    make(tmp_path, binary).chunks(SETTINGS, 1)
    settings, concurrency = SETTINGS, None
    kwargs: dict = {}
    if change == "settings":
        settings = SETTINGS.replace(ubatch_size=256)
    elif change == "workload":
        kwargs["workload"] = "callcentre-zh"
    elif change == "engine":
        binary.write_bytes(b"another build")
    elif change == "artifact":
        kwargs["models"] = FakeModels(sha="b" * 64)
    elif change == "load":
        concurrency = 1
    elif change == "plan":
        kwargs["plan"] = Plan(requests_per_slot=3)
    m = make(tmp_path, binary, **kwargs)
    m.chunks(settings, 1, concurrency)
    assert len(m.runs) == 1


def test_a_configuration_that_failed_is_not_retried_unless_asked(tmp_path: Path, binary: Path) -> None:
    class Failing(FakeRunMeasurer):
        def _run(self, settings, artifact, wanted):  # type: ignore[override]
            self.runs.append((settings, list(wanted)))
            return [{"error": "start: exited with status 1", "records": [], "measured_at": "x"} for _ in wanted]

    m = Failing(FakeModels(), Workload.load("short-chat"), binary=binary,  # type: ignore[arg-type]
                cache=MeasurementCache(tmp_path / "cache"), plan=Plan(), port_base=18100, log_dir=tmp_path)
    m.runs = []
    assert m.result(SETTINGS, 2, SLO)["error"].startswith("start:")
    assert m.result(SETTINGS, 2, SLO)["error"] and len(m.runs) == 1
    m.retry_failed = True
    m.result(SETTINGS, 1, SLO)
    assert len(m.runs) == 2


def test_aggregate_takes_rates_over_summed_wall_time_and_percentiles_over_all_records() -> None:
    def chunk(ttfts: list[float], wall: float) -> dict:
        return {"records": [{"ok": True, "error": None, "latency": 1.0, "ttft": t, "tpot": 0.01, "prompt_tokens": 10,
                             "output_tokens": 5} for t in ttfts], "duration_s": wall, "resources": {}}

    result = aggregate([chunk([0.1, 0.2], 2.0), chunk([0.3, 5.0], 2.0)], metrics.Slo(ttft=1.0))
    assert result["request_throughput"] == pytest.approx(1.0)  # 4 requests in 4 s
    assert result["goodput"] == pytest.approx(0.75)  # 3 met the 1 s TTFT
    assert result["ttft_max"] == 5.0 and result["requests"] == 4


def test_the_plan_key_does_not_depend_on_how_numbers_were_written() -> None:
    assert Plan(max_chunk_seconds=90, temperature=1).as_key() == Plan(max_chunk_seconds=90.0, temperature=1.0).as_key()


def test_a_chunk_measured_while_other_work_ran_is_measured_again_and_never_cached(
        tmp_path: Path, binary: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process busy during a measurement (CI, a build, a helper) would leave unfair figures in the
    cache for every later run: such a chunk is measured again in a fresh server start (the first one's prompt
    cache holds its prompts), and if the machine stays busy it is used in this run only and not cached."""

    class BusyMeasurer(FakeRunMeasurer):  # fake server runs; the guard around them is the real one
        foreign: list[float]

        def _run(self, settings, artifact, wanted):  # type: ignore[override]
            chunks = super()._run(settings, artifact, wanted)
            for chunk in chunks:
                used = self.foreign.pop(0)
                chunk["resources"]["foreign_cpu_percent_mean"] = used
                chunk["busy"] = used > (self.max_foreign_cpu or 100)
            return chunks

    def make_busy(foreign: list[float]) -> BusyMeasurer:
        m = BusyMeasurer(FakeModels(), Workload.load("short-chat"), binary=binary,  # type: ignore[arg-type]
                         cache=MeasurementCache(tmp_path / "cache"), plan=Plan(), port_base=18100, log_dir=tmp_path)
        m.runs, m.foreign, m.max_foreign_cpu, m.busy_retries = [], foreign, 10.0, 2
        return m

    sleeps: list[float] = []
    monkeypatch.setattr("benchmarks.tune.measure.time.sleep", sleeps.append)
    busy = make_busy([35.0, 30.0, 25.0])  # busy on every attempt: three server starts
    result = busy.result(SETTINGS, 1, SLO)
    assert busy.foreign == [] and len(busy.runs) == 3 and len(sleeps) == 2
    assert busy.busy_chunks == 1 and result["busy_chunks"] == 1 and result["foreign_cpu_percent_max"] == 25.0

    calm = make_busy([40.0, 3.0])  # busy, then quiet: the quiet measurement is kept and cached
    result = calm.result(SETTINGS, 1, SLO)
    assert calm.foreign == [] and len(calm.runs) == 2 and calm.busy_chunks == 0
    assert result["foreign_cpu_percent_max"] == 3.0 and result["busy_chunks"] == 0

    reread = make_busy([])  # a new process: the quiet chunk comes from the cache, nothing is measured
    assert reread.result(SETTINGS, 1, SLO)["reused_chunks"] == 1 and reread.runs == []
