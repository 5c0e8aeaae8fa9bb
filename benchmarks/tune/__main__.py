"""Tune the serving settings of one model on this host: measure, choose, write the inventory variables.

    python -m benchmarks.tune --profile qwen3-0.6b --workload callcentre-zh \\
        --slo-ttft 4 --slo-tpot 0.25 --memory-limit 6G --inventory inventories/local --host localhost

Starts real candidate servers on loopback (llama-server from the project's llama.cpp build on the
project's GGUF artifacts; with --backend onnxruntime also the project's ONNX server on its ONNX
exports), drives the load generator at every slot busy, samples memory and CPU, and searches
quantization, parallel slots, instances and threads, micro-batch, flash attention, KV cache type,
context bound, logical batch, mmap/mlock and prompt caching by coordinate descent with successive
halving (benchmarks/tune/search.py), not the full grid. Every measurement is cached
(~/.cache/qwen3-ops/tune): a re-run with nothing changed measures nothing and says "reused".

It picks the configuration with the highest goodput (requests per second that met the SLO) among
those whose p95 TTFT/TPOT meet the SLO and whose memory fits --memory-limit, and writes it as role
variables (llamacpp_server_*, serve_backend, systemd MemoryMax and Kubernetes requests/limits from
the measured peak RSS) to --vars-file or inventories/<env>/host_vars/<host>/tuned.yml, plus the full
record (every configuration measured, the path of the search, fidelity of each quantization) to
--out/tune.json. With --json the last line of stdout is one JSON object (for playbooks/tune.yml).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

import psutil

from benchmarks import metrics
from benchmarks.tune import MEASUREMENT_VERSION, fingerprint, inventory, search, space
from benchmarks.tune.cache import MeasurementCache
from benchmarks.tune.measure import Measurer, Plan
from benchmarks.tune.models import Models
from benchmarks.workload import Workload
from qwen3ops import gguf
from qwen3ops.errors import UserError
from qwen3ops.paths import PROJECT_ROOT, cache_dir


def parse_bytes(text: str, total: int | None = None) -> int:
    """'6G', '512M', '6GiB', '1500000000' -> bytes (K/M/G/T are powers of 1024); '80%' -> that share of total."""
    if text.strip().endswith("%") and total:
        try:
            return int(total * float(text.strip()[:-1]) / 100)
        except ValueError as exc:
            raise UserError(f"cannot read {text!r} as a share of memory: use e.g. 80%") from exc
    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    suffix = value[-1] if value and value[-1] in units else ""
    try:
        return int(float(value[: len(value) - len(suffix)]) * units[suffix])
    except ValueError as exc:
        raise UserError(f"cannot read {text!r} as a memory size: use e.g. 6G or 512M") from exc


def workload_needs(workload: Workload) -> space.Needs:
    def most(spec: dict[str, Any]) -> int:
        return int(spec.get("max", spec.get("value", spec.get("mean", 512))))
    return space.Needs(most(workload.prompt_tokens), most(workload.output_tokens))


def fmt_bytes(value: float | None) -> str:
    return "–" if not value else f"{value / 2**20:.0f} MiB"


class Printer:
    """One line per evaluation: what was measured, or reused, and what it gave."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.count = 0

    def result(self, r: dict[str, Any]) -> None:
        self.count += 1
        if self.quiet:
            return
        state = "reused  " if r["reused_chunks"] == r["chunks"] else "measured"
        error = f"  ERROR {r['error'][:160]}" if r.get("error") else ""
        ttft, tpot = r.get("ttft_p95"), r.get("tpot_p95")
        print(f"[{self.count:3}] {state} {r['label']:84} chunks={r['chunks']}  goodput {r['goodput']:.3f} req/s  "
              f"{r['request_throughput']:.3f} req/s  TTFT p95 {ttft or 0:.2f}s  TPOT p95 {(tpot or 0) * 1000:.0f}ms  "
              f"mem {fmt_bytes(r.get('pss_bytes') or r.get('rss_peak_bytes'))}{error}", file=sys.stderr, flush=True)

    def step(self, step: search.Step) -> None:
        if not self.quiet:
            changed = "→ " + step.winner.label() if step.winner != step.incumbent else "unchanged"
            print(f"      {step.dimension}: {changed} ({step.reason})", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    workload = Workload.load(args.workload)
    needs = workload_needs(workload)
    host_info = fingerprint.host()
    host = space.Host(cpus=args.cpus or host_info["logical_cpus"], memory_bytes=psutil.virtual_memory().total)
    slo = metrics.Slo(args.slo_ttft, args.slo_tpot, args.slo_latency)
    memory_limit = parse_bytes(args.memory_limit, host.memory_bytes) if args.memory_limit else None
    bin_dir = gguf.llamacpp_bin_dir(args.llamacpp_bin) if "llamacpp" in args.backend else args.llamacpp_bin
    models = Models(args.profile, args.source, args.store, bin_dir)
    plan = Plan(requests_per_slot=args.requests_per_slot, min_requests=args.min_requests,
                max_requests=args.max_requests, max_chunk_seconds=args.max_chunk_seconds,
                max_chunks=max(args.final_chunks, 2), temperature=args.temperature)
    out_dir = Path(args.out or PROJECT_ROOT / "reports" / "tune" / args.profile).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    measurer = Measurer(models, workload, binary=(bin_dir / "llama-server") if bin_dir else None,
                        cache=MeasurementCache(args.cache_dir), plan=plan, port_base=args.port_base,
                        log_dir=cache_dir() / "tune" / "logs")
    measurer.retry_failed = args.retry_failed
    measurer.max_foreign_cpu = args.max_foreign_cpu if args.max_foreign_cpu >= 0 else None
    measurer.progress = not args.quiet
    printer = Printer(args.quiet)
    evaluate = measurer.evaluator(slo, printer.result)

    policy = search.Policy(memory_limit_bytes=memory_limit, final_chunks=args.final_chunks,
                           tolerance=args.tolerance, time_budget_s=args.time_budget * 60 if args.time_budget else None,
                           passes=args.passes)
    results: dict[str, search.SearchResult] = {}
    starts: dict[str, space.Settings] = {}
    for backend in args.backend:
        start = space.load_settings(args.start) if args.start else space.baseline(backend, host, needs)
        if start.backend != backend:
            start = space.baseline(backend, host, needs)
        dims = space.dimensions(backend, needs)
        if args.dimensions:
            wanted = args.dimensions.split(",")
            known = {d.name for b in args.backend for d in space.dimensions(b, needs)}
            unknown = sorted(set(wanted) - known)
            if unknown:
                raise UserError(f"unknown dimension(s) {unknown}; choose from {', '.join(sorted(known))}")
            dims = [d for name in wanted for d in dims if d.name == name]  # others belong to another backend
        if not args.quiet:
            print(f"== {backend}: start {start.label()}; dimensions {', '.join(d.name for d in dims)}",
                  file=sys.stderr)
        starts[backend] = start
        results[backend] = search.coordinate_descent(start, dims, host, evaluate, policy, printer.step)

    finals = [r.best for r in results.values()]
    best, reason = search.decide(None, finals, policy, memory_dimension=False)
    if best.error or not best.details.get("completed"):
        raise UserError(f"no configuration could be measured ({best.error}); see the logs in "
                        f"{cache_dir() / 'tune' / 'logs'}")
    baseline_eval = max((e for r in results.values() for e in r.evaluations
                         if e.settings == starts[best.settings.backend]), key=lambda e: e.chunks, default=None)
    peak_instance = best.details.get("rss_peak_per_instance_bytes") or best.details.get("rss_peak_bytes") or 0
    measured_at = max((e.details.get("measured_at", "") for r in results.values() for e in r.evaluations),
                      default="")
    summary = {
        "tool": f"python -m benchmarks.tune (measurement version {MEASUREMENT_VERSION})",
        "measured_at": measured_at,
        "host": platform.node(),
        "machine": f"{host_info['cpu_model']}, {host_info['logical_cpus']} logical CPUs, "
                   f"{host_info['memory_gib']} GiB",
        "synthetic_weights": models.synthetic,
        "profile": args.profile,
        "workload": workload.name,
        "slo": {k: v for k, v in slo.as_dict().items() if v is not None},
        "memory_limit": args.memory_limit,
        "settings": best.settings.label(),
        "goodput_rps": round(best.goodput, 4),
        "baseline_goodput_rps": round(baseline_eval.goodput, 4) if baseline_eval else None,
        "baseline": "start settings" if args.start else "roles' defaults",
        "peak_rss_per_instance_mib": round(peak_instance / 2**20),
    }
    variables = inventory.variables(best.settings, args.profile, peak_instance, args.headroom, summary)
    unknown = inventory.unknown_variables(variables)
    if unknown:
        raise RuntimeError(f"variables unknown to the roles' argument specs: {unknown}")
    weights = "SYNTHETIC weights (random: speed and memory are real, answers are not)" if models.synthetic \
        else "real weights"
    baseline_name = "the start settings" if args.start else "the roles' defaults"
    slo_text = ", ".join(f"{k} p95 <= {v} s" for k, v in summary["slo"].items()) or "none"
    header = [
        f"Tuned serving settings for {args.host or args.group or 'this host'}: written by `python -m benchmarks.tune`",
        "(playbooks/tune.yml). Generated: re-run the tuning instead of editing; delete this file to go back",
        "to the group's settings.",
        f"Measured {measured_at} on {platform.node()} ({summary['machine']}).",
        f"Model {args.profile}, {weights}.",
        f"Workload {workload.name}; SLO {slo_text}; memory limit {args.memory_limit or 'none'}.",
        f"Chosen: {best.settings.label()}",
        f"  goodput {best.goodput:.3f} req/s at {best.settings.concurrency} concurrent requests "
        f"({baseline_name}: {summary['baseline_goodput_rps']} req/s); peak RSS per instance "
        f"{peak_instance / 2**20:.0f} MiB, MemoryMax = peak x {args.headroom} rounded up to 64 MiB.",
        f"Record of the search: {out_dir / 'tune.json'}",
    ]
    text = inventory.render(variables, header)
    vars_file = args.vars_file
    if vars_file is None and args.inventory:
        vars_file = inventory.default_path(args.inventory, args.host, args.group)
    changed = inventory.write(vars_file, text) if vars_file else False

    fidelity: dict[str, Any] = {}
    if not args.no_fidelity:
        served = sorted({(e.settings.backend, e.settings.quant) for r in results.values() for e in r.evaluations})
        try:
            fidelity = models.fidelity(served)
        except (UserError, RuntimeError, OSError) as exc:
            fidelity = {"error": str(exc)}
    record = {
        "meta": {"command": "python -m benchmarks.tune " + shlex.join(sys.argv[1:]), "host": host_info,
                 "hostname": platform.node(), "profile": args.profile, "synthetic": models.synthetic,
                 "workload": workload.as_dict(), "slo": slo.as_dict(), "memory_limit_bytes": memory_limit,
                 "plan": plan.as_key(), "policy": {"final_chunks": policy.final_chunks, "tolerance": policy.tolerance,
                                                   "drop_margin": policy.drop_margin, "passes": policy.passes,
                                                   "time_budget_s": policy.time_budget_s},
                 "measured_chunks": measurer.measured_chunks, "reused_chunks": measurer.reused_chunks,
                 "engine": {b: measurer.engine(b) for b in args.backend}},
        "best": {"settings": best.settings.as_dict(), "label": best.settings.label(), "reason": reason,
                 "result": best.details},
        "baseline": {"settings": baseline_eval.settings.as_dict(), "result": baseline_eval.details}
        if baseline_eval else None,
        "searches": {backend: {
            "start": starts[backend].as_dict(), "elapsed_s": r.elapsed_s, "skipped": r.skipped,
            "steps": [{"dimension": s.dimension, "incumbent": s.incumbent.label(), "winner": s.winner.label(),
                       "reason": s.reason, "tried": [{"settings": e.settings.as_dict(), "label": e.settings.label(),
                                                      "chunks": e.chunks, "slo_met": e.slo_met,
                                                      "result": e.details} for e in s.tried]}
                      for s in r.steps]} for backend, r in results.items()},
        "fidelity": fidelity,
        "variables": variables,
        "vars_file": str(vars_file) if vars_file else None,
    }
    (out_dir / "tune.json").write_text(json.dumps(record, indent=1, default=str) + "\n", encoding="utf-8")
    return {"changed": changed, "vars_file": str(vars_file) if vars_file else None, "yaml": text,
            "variables": variables, "best": best.settings.label(), "goodput": best.goodput,
            "measured_chunks": measurer.measured_chunks, "reused_chunks": measurer.reused_chunks,
            "configurations": len({e.settings for r in results.values() for e in r.evaluations}),
            "skipped_dimensions": sorted({d for r in results.values() for d in r.skipped}),
            "tune_json": str(out_dir / "tune.json")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="qwen3-0.6b", help="model profile (qwen3ops/profiles.yml)")
    p.add_argument("--source", default="synthetic", help="checkpoint source: synthetic, hub:<id> or a directory")
    p.add_argument("--workload", default="callcentre-zh", help="workload file or name in benchmarks/workloads/")
    p.add_argument("--slo-ttft", type=float, default=4.0, help="SLO: TTFT p95 limit in s (default: %(default)s)")
    p.add_argument("--slo-tpot", type=float, default=0.25, help="SLO: TPOT p95 limit in s (default: %(default)s)")
    p.add_argument("--slo-latency", type=float, default=None, help="SLO: end-to-end latency p95 limit in s")
    p.add_argument("--memory-limit", default=None,
                   help="memory the instances may use together, e.g. 6G, or a share of this host's, e.g. 80%%")
    p.add_argument("--backend", action="append", choices=list(space.BACKENDS), default=None,
                   help="backend to search (repeatable; default: llamacpp)")
    p.add_argument("--dimensions", default=None, help="comma-separated dimensions to search, in order "
                   "(default: all of the backend's, in priority order)")
    p.add_argument("--start", type=Path, default=None, help="start from these settings (a tune.json's best, or a "
                   "YAML/JSON mapping) instead of the roles' defaults")
    p.add_argument("--final-chunks", type=int, default=2, help="chunks the finalists of a dimension are measured on")
    p.add_argument("--requests-per-slot", type=int, default=2, help="requests per busy slot in a chunk")
    p.add_argument("--min-requests", type=int, default=4, help="fewest requests in a chunk")
    p.add_argument("--max-requests", type=int, default=24, help="most requests in a chunk")
    p.add_argument("--max-chunk-seconds", type=float, default=90, help="a chunk stops sending after this long")
    p.add_argument("--tolerance", type=float, default=0.05, help="relative goodput difference taken as noise")
    p.add_argument("--passes", type=int, default=1, help="passes of coordinate descent over the dimensions")
    p.add_argument("--time-budget", type=float, default=None, help="minutes; no new dimension starts after that")
    p.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (tiny random models: 1.0)")
    p.add_argument("--headroom", type=float, default=1.25, help="MemoryMax = peak RSS per instance x this")
    p.add_argument("--cpus", type=int, default=None, help="cores to plan threads for (default: this host's)")
    p.add_argument("--port-base", type=int, default=18100, help="first loopback port for candidate servers")
    p.add_argument("--inventory", type=Path, default=None, help="inventory directory, e.g. inventories/local")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--host", default=None, help="write host_vars/<host>/tuned.yml in --inventory")
    target.add_argument("--group", default=None, help="write group_vars/<group>/tuned.yml in --inventory")
    p.add_argument("--vars-file", type=Path, default=None, help="write the variables to this file instead")
    p.add_argument("--out", type=Path, default=None, help="directory for tune.json (default: reports/tune/<profile>)")
    p.add_argument("--store", type=Path, default=None, help="artifact store (default: the project's)")
    p.add_argument("--llamacpp-bin", type=Path, default=None, help="llama.cpp bin directory (default: the cached "
                   "build of scripts/build-llamacpp.sh)")
    p.add_argument("--max-foreign-cpu", type=float, default=10.0,
                   help="percent of one core that other processes (not the servers, not the load generator) may "
                   "use while a chunk is measured; a busier chunk is measured again and never cached (default: "
                   "%(default)s; a negative value turns the check off)")
    p.add_argument("--cache-dir", type=Path, default=None, help="measurement cache (default: "
                   "~/.cache/qwen3-ops/tune/measurements)")
    p.add_argument("--retry-failed", action="store_true", help="measure again configurations that failed before")
    p.add_argument("--no-fidelity", action="store_true", help="skip the quantizations' fidelity")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line (last line)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.backend = args.backend or ["llamacpp"]
    if args.inventory and not (args.host or args.group):
        parser.error("--inventory needs --host or --group")
    try:
        result = run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print(f"best: {result['best']}  goodput {result['goodput']:.3f} req/s")
        print(f"{result['configurations']} configurations, {result['measured_chunks']} chunks measured, "
              f"{result['reused_chunks']} reused")
        if result["skipped_dimensions"]:
            print(f"not searched (time budget): {', '.join(result['skipped_dimensions'])}")
        print(f"variables: {result['vars_file'] or '(not written: give --inventory/--host or --vars-file)'}"
              f"{' (changed)' if result['changed'] else ' (unchanged)'}")
        print(f"record: {result['tune_json']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
