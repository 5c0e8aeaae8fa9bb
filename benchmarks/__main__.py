"""Benchmark a deployed endpoint: a sweep of load levels, resource sampling, roofline and reports.

    python -m benchmarks run --url http://127.0.0.1:8080 --workload callcentre-zh --concurrency 1,2,4,8
    python -m benchmarks run --url http://127.0.0.1:8080 --rate 0.5,1,2 --arrival poisson
    python -m benchmarks compare reports/bench-A reports/bench-B [--out reports/compare]
    python -m benchmarks.hwprobe        # the host's read bandwidth and matmul rate
    python -m benchmarks.selfcheck      # the load generator's own ceiling

A run writes records.jsonl, resources.jsonl, summary.csv, summary.json, report.md, report.html and
plots/ into --out, and prints the per-level table.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from benchmarks import hwprobe, report, selfcheck
from benchmarks.loadgen import Level, run_level
from benchmarks.metrics import Slo, summarize
from benchmarks.resources import Sampler, Targets, level_usage
from benchmarks.workload import Workload, build_requests
from qwen3ops import profiles
from qwen3ops.client import Endpoint, list_models
from qwen3ops.errors import UserError
from qwen3ops.paths import PROJECT_ROOT

QUANT_PATTERN = re.compile(r"(f16|bf16|f32|fp32|q8_0|q4_k_m|q4_0|q5_k_m|q6_k|int4|int8)", re.IGNORECASE)


def git_revision() -> str:
    out = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, check=False)
    dirty = subprocess.run(["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return (out.stdout.strip() or "unknown") + ("-dirty" if dirty else "")


def server_info(ep: Endpoint) -> dict[str, Any]:
    """What the server says about itself: model, synthetic flag, backend, version, settings."""
    info: dict[str, Any] = {}
    try:
        models = list_models(ep)
    except httpx.HTTPError as exc:
        raise UserError(f"cannot list models at {ep.base} ({exc}); is the server up? try "
                        "`python -m qwen3ops.client status --url ...`") from exc
    if models:
        model = models[0]
        info["model"] = model.get("id")
        info["synthetic"] = "synthetic" in json.dumps(model).lower()
        info["backend"] = {"llamacpp": "llama.cpp"}.get(str(model.get("owned_by")), model.get("owned_by"))
    if ep.api == "ollama":
        info["backend"] = "ollama"
    for path in ("/props", "/v1/server_info", "/api/version"):
        try:
            response = httpx.get(ep.base + path, headers=ep.headers(), timeout=10)
        except httpx.HTTPError:
            continue
        if response.status_code != 200:
            continue
        data = response.json()
        if path == "/props":
            gen = data.get("default_generation_settings", {})
            info["settings"] = {"n_ctx": gen.get("n_ctx") or data.get("n_ctx"), "total_slots": data.get("total_slots")}
            info["version"] = data.get("build_info")
            info["model_path"] = data.get("model_path")
            info.setdefault("backend", "llama.cpp")
        elif path == "/v1/server_info":
            info.update({k: v for k, v in data.items() if k in ("backend", "version", "settings", "quantization")})
        else:
            info.setdefault("version", data.get("version"))
    match = QUANT_PATTERN.search(" ".join(str(info.get(k, "")) for k in ("model", "model_path")))
    info.setdefault("quantization", match.group(1).upper() if match else None)
    return info


def parse_levels(concurrency: str | None, rate: str | None, arrival: str) -> list[Level]:
    try:
        if rate:
            return [Level(rate=float(r), arrival=arrival) for r in rate.split(",")]
        return [Level(concurrency=int(c)) for c in (concurrency or "1,2,4,8").split(",")]
    except ValueError as exc:
        raise UserError(f"levels must be comma-separated numbers, e.g. --concurrency 1,2,4,8 ({exc})") from exc


def run(args: argparse.Namespace) -> Path:
    ep = Endpoint(args.url, args.api, _api_key(args.api_key_file), args.model)
    info = server_info(ep)
    if not args.model and info.get("model"):
        ep = Endpoint(args.url, args.api, ep.api_key, info["model"])
    if args.quantization:
        info["quantization"] = args.quantization
    workload = Workload.load(args.workload)
    levels = parse_levels(args.concurrency, args.rate, args.arrival)
    requests = build_requests(workload, max(args.requests, 16))
    slo = Slo(args.slo_ttft, args.slo_tpot, args.slo_latency)
    model_bytes = args.model_bytes or (Path(args.model_file).stat().st_size if args.model_file else None)
    parameters = profiles.get(args.profile).parameters if args.profile else None
    hw = hwprobe.probe(args.threads) if not args.no_probe else {}
    ceilings = hwprobe.floors(hw, model_bytes, parameters) if hw else {}
    check = selfcheck.run(requests=500, concurrency=32) if args.selfcheck else None
    out = Path(args.out or PROJECT_ROOT / "reports" / f"bench-{dt.datetime.now():%Y%m%d-%H%M%S}")
    out.mkdir(parents=True, exist_ok=True)

    targets = Targets(pids=args.pid or [], pattern=args.process, units=args.unit or [],
                      containers=args.container or [])
    sampler = Sampler(targets, args.sample_interval).start()
    all_records: list[dict[str, Any]] = []
    summaries = []
    try:
        for level in levels:
            sampler.mark(f"warmup-{level.label}")
            records = asyncio.run(run_level(
                ep, requests, level, max_requests=args.requests, max_duration=args.duration, warmup=args.warmup,
                ignore_eos=workload.ignore_eos, timeout=args.timeout, progress=not args.quiet,
                temperature=args.temperature,
                on_start=lambda label=level.label: sampler.mark(label)))
            all_records.extend(records)
            summary = {"level": level.label, "concurrency": level.concurrency, "rate": level.rate,
                       **summarize(records, slo), **level_usage(sampler.samples, level.label)}
            if model_bytes and summary.get("tpot_mean") and hw:
                summary["decode_bandwidth_bytes_per_s"] = model_bytes / summary["tpot_mean"]
                summary["bandwidth_fraction"] = (summary["decode_bandwidth_bytes_per_s"]
                                                 / hw["read_bandwidth_bytes_per_s"])
            summaries.append(summary)
            if not args.quiet:
                print(f"  {level.label}: {summary['completed']}/{summary['requests']} ok, "
                      f"{summary['request_throughput']:.3f} req/s, {summary['output_throughput']:.1f} out tok/s, "
                      f"TTFT p50 {summary['ttft_p50'] or 0:.3f}s, TPOT p50 {(summary['tpot_p50'] or 0) * 1000:.1f} ms",
                      file=sys.stderr)
    finally:
        samples = sampler.stop()
    loadgen_cpu = [s["loadgen_cpu_percent"] for s in samples if not s["level"].startswith(("idle", "warmup"))]
    meta = {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m benchmarks " + shlex.join(sys.argv[1:]) if sys.argv[0].endswith("__main__.py")
        else shlex.join(sys.argv),
        "git_revision": git_revision(),
        "host": platform.node(),
        "platform": platform.platform(),
        "url": ep.base,
        "api": ep.api,
        "server": info,
        "server_pids": sampler.pids,
        "workload": workload.as_dict(),
        "levels": [lvl.label for lvl in levels],
        "requests_per_level": args.requests,
        "duration_limit_s": args.duration,
        "warmup_requests": args.warmup,
        "temperature": args.temperature,
        "slo": slo.as_dict(),
        "hardware": hw,
        "model_bytes": model_bytes,
        "parameters": parameters,
        **ceilings,
        "loadgen_cpu_percent_mean": sum(loadgen_cpu) / len(loadgen_cpu) if loadgen_cpu else 0.0,
        "selfcheck": check,
        "selfcheck_rps": round(check["requests_per_s"], 1) if check else None,
    }
    summary_doc = {"meta": meta, "levels": summaries}
    report.write_all(out, summary_doc, all_records, samples)
    print(report.markdown_table(summaries))
    print(f"reports: {out}/report.md, report.html, summary.json, summary.csv, records.jsonl")
    return out


def _api_key(path: str | None) -> str | None:
    return Path(path).read_text(encoding="utf-8").strip() if path else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a sweep against an endpoint and write the reports")
    r.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8080 (a load balancer or instance)")
    r.add_argument("--api", choices=["openai", "ollama"], default="openai")
    r.add_argument("--model", default=None, help="model name to request (default: the server's first model)")
    r.add_argument("--api-key-file", default=None)
    r.add_argument("--workload", default="callcentre-zh", help="workload file or name in benchmarks/workloads/")
    r.add_argument("--concurrency", default=None, help="closed-loop levels, e.g. 1,2,4,8 (the default)")
    r.add_argument("--rate", default=None, help="open-loop levels in requests/s, e.g. 0.25,0.5,1")
    r.add_argument("--arrival", choices=["poisson", "constant"], default="poisson")
    r.add_argument("--requests", type=int, default=16, help="requests per level (default: %(default)s)")
    r.add_argument("--duration", type=float, default=300, help="max seconds per level (default: %(default)s)")
    r.add_argument("--warmup", type=int, default=1, help="warm-up requests per level, not recorded")
    r.add_argument("--timeout", type=float, default=600)
    r.add_argument("--temperature", type=float, default=0.0,
                   help="sampling temperature (default: %(default)s; tiny random models may need 1.0 to emit text)")
    r.add_argument("--slo-ttft", type=float, default=2.0, help="SLO: TTFT limit in s (default: %(default)s)")
    r.add_argument("--slo-tpot", type=float, default=0.2, help="SLO: TPOT limit in s (default: %(default)s)")
    r.add_argument("--slo-latency", type=float, default=None, help="SLO: end-to-end latency limit in s")
    r.add_argument("--pid", type=int, action="append", help="server process id to sample (repeatable)")
    r.add_argument("--process", default=None, help="regex over command lines of server processes, e.g. llama-server")
    r.add_argument("--unit", action="append", help="systemd unit of a server (repeatable)")
    r.add_argument("--container", action="append", help="podman container of a server (repeatable)")
    r.add_argument("--sample-interval", type=float, default=0.5)
    r.add_argument("--model-file", default=None, help="the served model file (GGUF/ONNX data), for the roofline")
    r.add_argument("--model-bytes", type=int, default=None, help="bytes of weights read per decode step")
    r.add_argument("--profile", default=None, help="model profile, for operations per prompt token")
    r.add_argument("--quantization", default=None, help="label, when the server does not say")
    r.add_argument("--threads", type=int, default=None, help="threads for the hardware probe (= server threads)")
    r.add_argument("--no-probe", action="store_true", help="skip the hardware probe")
    r.add_argument("--no-selfcheck", dest="selfcheck", action="store_false", help="skip the load-generator self-check")
    r.add_argument("--out", default=None, help="output directory (default: reports/bench-<time>)")
    r.add_argument("--quiet", action="store_true")
    c = sub.add_parser("compare", help="put several runs side by side")
    c.add_argument("runs", nargs="+", type=Path)
    c.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            run(args)
        else:
            print(report.compare(args.runs, args.out))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
