"""Reports of a benchmark run: raw records (JSONL), per-level summary (CSV, JSON), Markdown and a
self-contained HTML page with plots; and the side-by-side comparison of several runs.

A run directory holds: records.jsonl, resources.jsonl, summary.csv, summary.json (metadata +
levels), report.md, report.html, plots/*.png.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SUMMARY_COLUMNS = [
    ("level", "level", "{}"),
    ("completed", "ok", "{:.0f}"),
    ("failed", "failed", "{:.0f}"),
    ("request_throughput", "req/s", "{:.3f}"),
    ("goodput", "goodput req/s", "{:.3f}"),
    ("output_throughput", "out tok/s", "{:.1f}"),
    ("input_throughput", "in tok/s", "{:.1f}"),
    ("latency_mean", "latency mean s", "{:.2f}"),
    ("latency_p50", "p50", "{:.2f}"),
    ("latency_p90", "p90", "{:.2f}"),
    ("latency_p99", "p99", "{:.2f}"),
    ("ttft_p50", "TTFT p50 s", "{:.3f}"),
    ("ttft_p95", "TTFT p95 s", "{:.3f}"),
    ("tpot_p50", "TPOT p50 ms", "{:.1f}", 1000),
    ("tpot_p95", "TPOT p95 ms", "{:.1f}", 1000),
    ("itl_p95", "ITL p95 ms", "{:.1f}", 1000),
    ("server_cpu_percent_mean", "server CPU %", "{:.0f}"),
    ("server_rss_bytes_peak", "server RSS peak MiB", "{:.0f}", 1 / 2**20),
    ("loadgen_cpu_percent_mean", "loadgen CPU %", "{:.1f}"),
    ("bandwidth_fraction", "of read BW", "{:.0%}"),
]


def _fmt(value: Any, spec: tuple) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    scale = spec[3] if len(spec) > 3 else None
    if scale is not None:
        value = value * scale
    try:
        return spec[2].format(value)
    except (ValueError, TypeError):
        return str(value)


def markdown_table(levels: list[dict[str, Any]], columns: list[tuple] | None = None) -> str:
    columns = columns or SUMMARY_COLUMNS
    head = "| " + " | ".join(c[1] for c in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    rows = ["| " + " | ".join(_fmt(level.get(c[0]), c) for c in columns) + " |" for level in levels]
    return "\n".join([head, rule, *rows])


def write_tables(out: Path, summary: dict[str, Any], records: list[dict[str, Any]],
                 samples: list[dict[str, Any]]) -> None:
    with (out / "records.jsonl").open("w", encoding="utf-8") as handle:
        for r in records:
            handle.write(json.dumps(r) + "\n")
    with (out / "resources.jsonl").open("w", encoding="utf-8") as handle:
        for s in samples:
            handle.write(json.dumps(s) + "\n")
    pd.DataFrame(summary["levels"]).drop(columns=["errors"], errors="ignore").to_csv(out / "summary.csv", index=False)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plots(out: Path, summary: dict[str, Any], records: list[dict[str, Any]],
          samples: list[dict[str, Any]]) -> list[Path]:
    """Throughput and latency against load, TTFT/TPOT distributions, CPU and memory over time."""
    pdir = out / "plots"
    pdir.mkdir(exist_ok=True)
    levels = pd.DataFrame(summary["levels"])
    x_key = "concurrency" if levels["concurrency"].notna().all() else "rate"
    x_label = "concurrent requests" if x_key == "concurrency" else "request rate (req/s)"
    x = levels[x_key]
    made = []

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.plot(x, levels["request_throughput"], "o-", label="requests/s")
    ax.plot(x, levels["goodput"], "s--", label="goodput (SLO met)/s")
    ax.set_xlabel(x_label)
    ax.set_ylabel("requests/s")
    ax2 = ax.twinx()
    ax2.plot(x, levels["output_throughput"], "^:", color="tab:green", label="output tokens/s")
    ax2.set_ylabel("output tokens/s")
    ax.legend(loc="upper left", fontsize=8)
    ax2.legend(loc="lower right", fontsize=8)
    ax.set_title("Throughput")
    made.append(_save(fig, pdir / "throughput.png"))

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for p, style in (("p50", "o-"), ("p90", "s--"), ("p99", "^:")):
        ax.plot(x, levels[f"latency_{p}"], style, label=f"latency {p}")
        ax.plot(x, levels[f"ttft_{p}"], style, alpha=0.5, label=f"TTFT {p}")
    ax.set_xlabel(x_label)
    ax.set_ylabel("seconds")
    ax.set_title("Latency percentiles")
    ax.legend(fontsize=7, ncol=2)
    made.append(_save(fig, pdir / "latency.png"))

    ok = [r for r in records if r["ok"]]
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.6))
    for label in levels["level"]:
        rows = [r for r in ok if r["level"] == label]
        axes[0].hist([r["ttft"] for r in rows if r["ttft"] is not None], bins=20, alpha=0.5, label=label)
        axes[1].hist([r["tpot"] * 1000 for r in rows if r["tpot"] is not None], bins=20, alpha=0.5, label=label)
    axes[0].set_xlabel("TTFT (s)")
    axes[1].set_xlabel("TPOT (ms)")
    axes[0].set_ylabel("requests")
    axes[0].legend(fontsize=7)
    axes[0].set_title("Time to first token")
    axes[1].set_title("Time per output token")
    made.append(_save(fig, pdir / "distributions.png"))

    if samples:
        frame = pd.DataFrame(samples)
        fig, axes = plt.subplots(2, 1, figsize=(7.2, 4.8), sharex=True)
        axes[0].plot(frame["t"], frame["server_cpu_percent"], label="server")
        axes[0].plot(frame["t"], frame["host_cpu_percent"], alpha=0.6, label="host")
        axes[0].plot(frame["t"], frame["loadgen_cpu_percent"], alpha=0.6, label="load generator")
        axes[0].set_ylabel("CPU % (100 = 1 core)")
        axes[0].legend(fontsize=7)
        axes[1].plot(frame["t"], frame["server_rss_bytes"] / 2**20, label="server RSS")
        axes[1].plot(frame["t"], frame["host_used_bytes"] / 2**20, alpha=0.6, label="host used")
        axes[1].set_ylabel("MiB")
        axes[1].set_xlabel("seconds since start")
        axes[1].legend(fontsize=7)
        for _, group in frame.groupby("level", sort=False):
            axes[0].axvline(group["t"].iloc[0], color="grey", lw=0.5)
        axes[0].set_title("CPU and memory over time")
        made.append(_save(fig, pdir / "resources.png"))
    return made


def _meta_lines(meta: dict[str, Any]) -> list[str]:
    server = meta.get("server", {})
    hw = meta.get("hardware", {})
    weights = "SYNTHETIC weights" if server.get("synthetic") else "real weights"
    lines = [
        f"- **Model**: {server.get('model', '?')} — **{weights}**"
        f"; quantization {server.get('quantization') or '?'}; backend {server.get('backend', '?')} "
        f"(version {server.get('version') or '?'})",
        f"- **Endpoint**: {meta.get('url')} ({meta.get('api')} API); server settings: "
        f"`{json.dumps(server.get('settings', {}), ensure_ascii=False)}`",
        f"- **Workload**: {meta['workload']['name']} — {meta['workload']['description']}",
        f"- **Host**: {meta.get('host')} — {hw.get('cpu_model')}, {hw.get('logical_cpus')} logical CPUs; probe: read "
        f"{(hw.get('read_bandwidth_bytes_per_s') or 0) / 1e9:.1f} GB/s, matmul fp32 "
        f"{(hw.get('matmul_fp32_flops') or 0) / 1e9:.0f} / bf16 {(hw.get('matmul_bf16_flops') or 0) / 1e9:.0f} GFLOP/s",
        f"- **Run**: {meta.get('started')} · git {meta.get('git_revision')} · command `{meta.get('command')}`",
        f"- **SLO** for goodput: {json.dumps(meta.get('slo'))} (seconds)",
        f"- **Load generator**: mean CPU {meta.get('loadgen_cpu_percent_mean', 0):.1f}% of one core; self-check "
        f"ceiling {meta.get('selfcheck_rps') or 'not run'} req/s",
    ]
    if meta.get("model_bytes"):
        lines.append(f"- **Roofline**: {meta['model_bytes'] / 2**20:.0f} MiB of weights read per decode step; "
                     f"ceiling {meta.get('decode_steps_per_s_ceiling') or 0:.1f} steps/s at the probed bandwidth")
    return lines


def write_markdown(out: Path, summary: dict[str, Any], made: list[Path]) -> Path:
    meta = summary["meta"]
    synthetic = meta.get("server", {}).get("synthetic")
    title = f"Benchmark: {meta.get('server', {}).get('model', '?')} on {meta.get('host')}"
    parts = [f"# {title}", ""]
    if synthetic:
        parts += ["> Synthetic weights: speed and resource figures are real; generated text is not.", ""]
    parts += [*_meta_lines(meta), "", "## Results per level", "", markdown_table(summary["levels"]), ""]
    errors = {lvl["level"]: lvl["errors"] for lvl in summary["levels"] if lvl.get("errors")}
    if errors:
        parts += ["Failures by kind: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), ""]
    parts += ["## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in made]
    path = out / "report.md"
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def write_html(out: Path, summary: dict[str, Any], made: list[Path]) -> Path:
    """One self-contained page (plots inlined as data URIs)."""
    import markdown as md  # tensorboard's dependency, pinned

    text = (out / "report.md").read_text(encoding="utf-8")
    for p in made:
        data = base64.b64encode(p.read_bytes()).decode()
        text = text.replace(f"(plots/{p.name})", f"(data:image/png;base64,{data})")
    body = md.markdown(text, extensions=["tables"])
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;"
             "text-align:right}img{max-width:100%}blockquote{background:#fff3cd;padding:.5em 1em}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(out.name)}</title>"
            f"<style>{style}</style></head><body>{body}</body></html>")
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def write_all(out: Path, summary: dict[str, Any], records: list[dict[str, Any]],
              samples: list[dict[str, Any]]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    write_tables(out, summary, records, samples)
    made = plots(out, summary, records, samples)
    return [write_markdown(out, summary, made), write_html(out, summary, made), *made]


COMPARE_COLUMNS = [("run", "run", "{}"), ("model", "model", "{}"), *SUMMARY_COLUMNS]


def compare(runs: list[Path], out: Path | None = None) -> str:
    """Several runs side by side, level by level; returns Markdown (also written to out/compare.md)."""
    rows = []
    for run in runs:
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
        server = summary["meta"].get("server", {})
        model = f"{server.get('model')} {'(synthetic)' if server.get('synthetic') else ''}".strip()
        for level in summary["levels"]:
            rows.append({"run": run.name, "model": model, **level})
    text = "# Benchmark comparison\n\n" + markdown_table(rows, COMPARE_COLUMNS) + "\n"
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.md").write_text(text, encoding="utf-8")
        pd.DataFrame(rows).drop(columns=["errors"], errors="ignore").to_csv(out / "compare.csv", index=False)
    return text
