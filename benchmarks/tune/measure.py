"""One measurement: a candidate server, a load level, the load generator, resource sampling, the cache.

A measurement of a configuration at a closed-loop concurrency is made of *chunks*: chunk i sends
its own slice of the workload's requests (different prompts in every chunk, so no chunk is served
from another's prompt cache), `requests_per_slot x concurrency` of them (within bounds), one round of
concurrency at a time. Each chunk is cached on its own, keyed by host, engine build, model artifact,
settings, workload, load level, chunk index and size, and measurement version; asking for more
chunks later runs only the new ones (successive halving re-uses its first round this way), and a
re-run with nothing changed runs none ("reused").

Chunks keep their per-request records (TTFT, TPOT, latency, tokens) rather than a summary, so the
SLO is applied when a result is read: changing the SLO re-uses every measurement. Resources per
chunk: peak RSS and mean CPU of each instance (sampled every 0.25 s), its RSS when idle (model
loaded, before the load), and the proportional set size (PSS: shared pages split between the
instances that map them) at the end of the chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from benchmarks import metrics
from benchmarks.loadgen import Level, run_level
from benchmarks.resources import Sampler, Targets
from benchmarks.tune import MEASUREMENT_VERSION, fingerprint, servers
from benchmarks.tune.cache import MeasurementCache
from benchmarks.tune.models import Artifact, Models
from benchmarks.tune.search import Evaluation
from benchmarks.tune.space import Settings
from benchmarks.workload import Request, Workload, build_requests
from qwen3ops.client import Endpoint

RECORD_FIELDS = ("ok", "error", "start", "end", "latency", "ttft", "tpot", "prompt_tokens", "output_tokens")


@dataclass(frozen=True)
class Plan:
    """How much load makes one chunk."""

    requests_per_slot: int = 2
    min_requests: int = 4
    max_requests: int = 24
    max_chunk_seconds: float = 90.0
    max_chunks: int = 4
    temperature: float = 0.0
    request_timeout: float = 600.0

    def chunk_requests(self, concurrency: int) -> int:
        return max(self.min_requests, min(self.max_requests, self.requests_per_slot * concurrency))

    def as_key(self) -> dict[str, Any]:
        return {"requests_per_slot": int(self.requests_per_slot), "min_requests": int(self.min_requests),
                "max_requests": int(self.max_requests), "max_chunk_seconds": float(self.max_chunk_seconds),
                "temperature": float(self.temperature)}


def aggregate(chunks: list[dict[str, Any]], slo: metrics.Slo) -> dict[str, Any]:
    """One result from several chunks: rates over their summed wall time, percentiles over all records."""
    records = [r for c in chunks for r in c.get("records", [])]
    error = next((c["error"] for c in chunks if c.get("error")), None)
    wall = sum(c.get("duration_s", 0.0) for c in chunks)
    ok = [r for r in records if r["ok"]]
    good = sum(1 for r in ok if slo.met(r))
    rate = (lambda x: x / wall) if wall > 0 else (lambda x: 0.0)
    errors: dict[str, int] = {}
    for r in records:
        if not r["ok"]:
            errors[r["error"] or "unknown"] = errors.get(r["error"] or "unknown", 0) + 1
    out: dict[str, Any] = {
        "chunks": len(chunks), "requests": len(records), "completed": len(ok), "failed": len(records) - len(ok),
        "errors": errors, "error": error, "duration_s": wall,
        "request_throughput": rate(len(ok)), "goodput": rate(good),
        "slo_attainment": good / len(records) if records else 0.0,
        "output_throughput": rate(sum(r["output_tokens"] or 0 for r in ok)),
        "input_throughput": rate(sum(r["prompt_tokens"] or 0 for r in ok)),
        "prompt_tokens_mean": sum(r["prompt_tokens"] or 0 for r in ok) / len(ok) if ok else None,
        "output_tokens_mean": sum(r["output_tokens"] or 0 for r in ok) / len(ok) if ok else None,
    }
    for name in ("latency", "ttft", "tpot"):
        out.update(metrics.distribution([r[name] for r in ok], name))
    resources = [c["resources"] for c in chunks if c.get("resources")]

    def peak(key: str) -> float | None:
        values = [r[key] for r in resources if r.get(key) is not None]
        return max(values) if values else None

    cpu = [r["cpu_percent_mean"] for r in resources if r.get("cpu_percent_mean") is not None]
    out.update({
        "rss_peak_bytes": peak("rss_peak_bytes"),
        "rss_peak_per_instance_bytes": peak("rss_peak_per_instance_bytes"),
        "rss_idle_bytes": peak("rss_idle_bytes"),
        "pss_bytes": peak("pss_bytes"),
        "cpu_percent_mean": sum(cpu) / len(cpu) if cpu else None,
        "other_cpu_percent_max": peak("other_cpu_percent_mean"),
        "foreign_cpu_percent_max": peak("foreign_cpu_percent_mean"),
        "busy_chunks": sum(1 for c in chunks if c.get("busy")),
        "start_s": next((c["start_s"] for c in chunks if c.get("start_s") is not None), None),
        "measured_at": max((c.get("measured_at", "") for c in chunks), default=""),
    })
    return out


def slo_met(result: dict[str, Any], slo: metrics.Slo) -> bool:
    """Whether the SLO's limits hold at the 95th percentile (TTFT, TPOT, latency), with at least one success."""
    if not result.get("completed"):
        return False
    limits = ((slo.ttft, result.get("ttft_p95")), (slo.tpot, result.get("tpot_p95")),
              (slo.latency, result.get("latency_p95")))
    return all(limit is None or (value is not None and value <= limit) for limit, value in limits)


def _pss(pid: int) -> int | None:
    try:
        proc = psutil.Process(pid)
        return sum(getattr(p.memory_full_info(), "pss", 0) for p in [proc, *proc.children(recursive=True)])
    except (psutil.Error, OSError):
        return None


class Measurer:
    """Measures configurations of one model on one workload, through the cache."""

    def __init__(self, models: Models, workload: Workload, *, binary: Path | None, cache: MeasurementCache,
                 plan: Plan, port_base: int, log_dir: Path, namespace: str = "tune") -> None:
        self.models = models
        self.workload = workload
        self.binary = binary
        self.cache = cache
        self.plan = plan
        self.port_base = port_base
        self.log_dir = log_dir
        self.namespace = namespace
        self.progress = False  # a progress bar per chunk of load (stderr)
        self.host = fingerprint.host()
        self._pool: list[Request] | None = None
        self._engines: dict[str, dict[str, Any]] = {}
        self.measured_chunks = 0
        self.reused_chunks = 0
        self.retry_failed = False
        # A chunk measured while work outside this process and the servers used more than this share of one
        # core (percent) is measured again in a fresh server start (up to busy_retries times: the first
        # server's prompt cache holds its prompts) and, if still busy, used in this run but never cached.
        self.max_foreign_cpu: float | None = None
        self.busy_retries = 2
        self.busy_chunks = 0

    # --- the request pool ------------------------------------------------------------------------
    def pool(self) -> list[Request]:
        if self._pool is None:
            size = self.plan.max_chunks * self.plan.max_requests + 16
            # Counted with the served checkpoint's own tokenizer files (the project's tokenizer).
            self._pool = build_requests(self.workload, size, str(self.models.checkpoint))
        return self._pool

    def chunk_requests(self, concurrency: int, chunk: int) -> list[Request]:
        n = self.plan.chunk_requests(concurrency)
        usable = self.pool()[:-16]  # the last 16 are the warm-up requests
        start = (chunk * n) % max(1, len(usable) - n + 1)
        return usable[start:start + n]

    def warmup_requests(self) -> list[Request]:
        return self.pool()[-16:]

    # --- keys ------------------------------------------------------------------------------------
    def engine(self, backend: str) -> dict[str, Any]:
        if backend not in self._engines:
            if backend == "llamacpp":
                if self.binary is None:
                    raise servers.StartError("llama.cpp candidates need the llama-server binary")
                self._engines[backend] = fingerprint.llamacpp_engine(self.binary)
            else:
                self._engines[backend] = fingerprint.onnx_engine()
        return self._engines[backend]

    def key(self, settings: Settings, artifact: Artifact, concurrency: int, chunk: int) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "measurement_version": MEASUREMENT_VERSION,
            "host": self.host,
            "engine": self.engine(settings.backend),
            "artifact": {"sha256": artifact.sha256, "quant": artifact.quant},
            "settings": settings.as_dict(),
            "workload": {"name": self.workload.name, "sha256": fingerprint.workload_hash(self.workload.source)},
            "load": {"concurrency": concurrency},
            "chunk": {"index": chunk, "requests": self.plan.chunk_requests(concurrency)},
            "plan": self.plan.as_key(),
        }

    # --- measuring -------------------------------------------------------------------------------
    def collect(self, settings: Settings, wanted: list[tuple[int, int]]) -> dict[tuple[int, int], dict]:
        """The chunks `wanted` ((concurrency, chunk index) pairs) of `settings`, from the cache or measured
        (all missing ones in one server start, in the order given). A configuration that could not run
        gives its error chunk for every pair (and is not tried again unless retry_failed)."""
        artifact = self.models.artifact(settings.backend, settings.quant)
        keys = {w: self.key(settings, artifact, *w) for w in wanted}
        found = {w: self.cache.get(k) for w, k in keys.items()}
        if self.retry_failed:
            found = {w: None if c and c.get("error") else c for w, c in found.items()}
        failed = next((c for c in found.values() if c and c.get("error")), None)
        if failed:
            self.reused_chunks += 1
            return {w: {**failed, "reused": True} for w in wanted}
        missing = [w for w in wanted if found[w] is None]
        todo = list(missing)
        for attempt in range(self.busy_retries + 1):
            if not todo:
                break
            if attempt:
                time.sleep(5)
            busy = []
            for w, chunk in zip(todo, self._run(settings, artifact, todo), strict=True):
                self.measured_chunks += 1
                if chunk.get("error"):
                    self.cache.put(keys[w], chunk)
                    return {x: chunk for x in wanted}
                found[w] = chunk
                if not chunk.get("busy"):
                    self.cache.put(keys[w], chunk)
                elif attempt < self.busy_retries:
                    busy.append(w)
                else:
                    self.busy_chunks += 1
            for concurrency, index in busy:
                used = found[(concurrency, index)]["resources"]["foreign_cpu_percent_mean"]
                print(f"warning: other processes used {used:.0f}% of a core while c{concurrency} chunk {index} of "
                      f"{settings.label()} was measured (limit {self.max_foreign_cpu:.0f}%): measuring it again in a "
                      "fresh server", file=sys.stderr, flush=True)
            todo = busy
        for w in missing:
            if found[w] is not None and found[w].get("busy"):
                print(f"warning: c{w[0]} chunk {w[1]} of {settings.label()} stayed busy: used in this run, not "
                      "cached; measure on an idle machine", file=sys.stderr, flush=True)
        self.reused_chunks += len(wanted) - len(missing)
        return {w: {**c, "reused": w not in missing} for w, c in found.items() if c is not None}

    def chunks(self, settings: Settings, count: int, concurrency: int | None = None) -> tuple[list[dict], int]:
        """The first `count` chunks of `settings` at `concurrency` (default: every slot busy), running only
        the missing ones. Returns (chunks, how many were reused)."""
        concurrency = concurrency or settings.concurrency
        got = self.collect(settings, [(concurrency, i) for i in range(count)])
        chunks = list(got.values())
        if any(c.get("error") for c in chunks):
            return [chunks[0]], count if chunks[0].get("reused") else 0
        return chunks, sum(1 for c in chunks if c.get("reused"))

    def _run(self, settings: Settings, artifact: Artifact, wanted: list[tuple[int, int]]) -> list[dict]:
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        try:
            with servers.running(settings, artifact, binary=self.binary, port_base=self.port_base,
                                 log_dir=self.log_dir) as server:
                endpoints = [Endpoint(url, model=server.model) for url in server.urls]
                asyncio.run(run_level(endpoints, self.warmup_requests(), Level(concurrency=len(endpoints)),
                                      max_requests=len(endpoints), max_duration=600, warmup=0,
                                      ignore_eos=self.workload.ignore_eos, timeout=self.plan.request_timeout,
                                      progress=False, temperature=self.plan.temperature))
                idle = sum(_rss(pid) for pid in server.pids)
                return [self._chunk(server, endpoints, concurrency, index, idle) for concurrency, index in wanted]
        except servers.StartError as exc:
            return [{"error": f"start: {exc}", "measured_at": now, "records": []} for _ in wanted]

    def _chunk(self, server: servers.Running, endpoints: list[Endpoint], concurrency: int, index: int,
               idle_rss: int) -> dict[str, Any]:
        requests = self.chunk_requests(concurrency, index)
        samplers = [Sampler(Targets(pids=[pid]), 0.25).start() for pid in server.pids]
        for sampler in samplers:
            sampler.mark("load")
        started = time.perf_counter()
        own_cpu = time.process_time()  # the load generator and the samplers (this process, every thread)
        try:
            records = asyncio.run(run_level(
                endpoints, requests, Level(concurrency=concurrency), max_requests=len(requests),
                max_duration=self.plan.max_chunk_seconds, warmup=0, ignore_eos=self.workload.ignore_eos,
                timeout=self.plan.request_timeout, progress=self.progress, temperature=self.plan.temperature))
        finally:
            samples = [s.stop() for s in samplers]
        wall = time.perf_counter() - started
        own_percent = 100 * (time.process_time() - own_cpu) / wall if wall > 0 else 0.0
        if records:
            wall = max(r["end"] for r in records) - min(r["start"] for r in records)
        peaks = [max((s["server_rss_bytes"] for s in rows), default=0) for rows in samples]
        cpu = [sum(s["server_cpu_percent"] for s in rows) / len(rows) for rows in samples if rows]
        host_rows = samples[0] if samples else []
        host_cpu = sum(s["host_cpu_percent"] for s in host_rows) / len(host_rows) if host_rows else None
        pss = [_pss(pid) for pid in server.pids]
        foreign = max(0.0, host_cpu - sum(cpu) - own_percent) if host_cpu is not None and cpu else None
        return {
            "records": [{k: r.get(k) for k in RECORD_FIELDS} for r in records],
            "duration_s": wall,
            "resources": {
                "rss_peak_bytes": sum(peaks),
                "rss_peak_per_instance_bytes": max(peaks) if peaks else None,
                "rss_idle_bytes": idle_rss,
                "pss_bytes": sum(p for p in pss if p is not None) if all(p is not None for p in pss) else None,
                "cpu_percent_mean": sum(cpu) if cpu else None,
                # Everything but the servers (the load generator and any other work): a measurement is
                # only fair when this stays small, so the report shows its maximum.
                "other_cpu_percent_mean": (max(0.0, host_cpu - sum(cpu)) if host_cpu is not None and cpu
                                           else None),
                # Of which not the load generator's: work of other processes (what makes a chunk unfair).
                "foreign_cpu_percent_mean": foreign,
            },
            "busy": foreign is not None and self.max_foreign_cpu is not None and foreign > self.max_foreign_cpu,
            "start_s": server.start_s,
            "server_model": server.model,
            "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }

    def result(self, settings: Settings, count: int, slo: metrics.Slo,
               concurrency: int | None = None) -> dict[str, Any]:
        """The aggregate of `count` chunks (measured or reused), with the settings and where they came from."""
        chunks, reused = self.chunks(settings, count, concurrency)
        out = aggregate(chunks, slo)
        artifact = self.models.artifact(settings.backend, settings.quant)
        out.update({"settings": settings.as_dict(), "label": settings.label(),
                    "concurrency": concurrency or settings.concurrency, "reused_chunks": reused,
                    "weight_bytes": artifact.weight_bytes, "model": artifact.name})
        return out

    def evaluator(self, slo: metrics.Slo, on_result: Callable[[dict[str, Any]], None] | None = None
                  ) -> Callable[[Settings, int], Evaluation]:
        """The measurement function the search calls."""
        def evaluate(settings: Settings, count: int) -> Evaluation:
            result = self.result(settings, count, slo)
            if on_result:
                on_result(result)
            memory = result["pss_bytes"] or result["rss_peak_bytes"]
            return Evaluation(settings, count, result["goodput"], result["request_throughput"], memory,
                              error=result["error"], slo_met=slo_met(result, slo),
                              reused=result["reused_chunks"] == count, details=result)
        return evaluate


def _rss(pid: int) -> int:
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
    return 0
