"""docs/performance-report.md is generated from recorded outputs: every figure traces back to the files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from benchmarks.tune import report
from tests.conftest import ROOT, run_cli

FIXTURE = ROOT / "tests" / "fixtures" / "tune" / "qwen3-tiny"


def generate(tmp_path: Path, *dirs: Path) -> str:
    out = tmp_path / "performance-report.md"
    result = run_cli("benchmarks.tune.report", *map(str, dirs), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out.read_text(encoding="utf-8")


def test_report_is_labelled_and_every_section_is_there(tmp_path: Path) -> None:
    text = generate(tmp_path, FIXTURE)
    compare = json.loads((FIXTURE / "compare.json").read_text())
    assert text.startswith("# Performance report: Qwen3 on " + compare["meta"]["hostname"])
    assert "**Synthetic weights.**" in text
    assert compare["meta"]["host"]["cpu_model"] in text and compare["meta"]["engine"]["build"] in text
    for heading in ("## Summary", "## Requests per second and response time", "## Qwen3-0.6B against Qwen3-1.7B",
                    "## Resource use", "## Share of the physical limit", "## Batching",
                    "## Quantization: speed next to its cost", "## Memory strategies, measured", "## The search",
                    "## Deployment recommendations per host size", "## The Ollama-defaults profile",
                    "## How it was measured"):
        assert heading in text, heading
    assert "None" not in text and "nan" not in text


def test_figures_come_from_the_recorded_files(tmp_path: Path) -> None:
    text = generate(tmp_path, FIXTURE)
    compare = json.loads((FIXTURE / "compare.json").read_text())
    tune = json.loads((FIXTURE / "tune.json").read_text())
    best = {name: report.best_level(p["levels"])[1] for name, p in compare["profiles"].items()}
    # The summary's goodput of each profile, and the ratios of the targets.
    for name, r in best.items():
        assert f"| {name} | `{compare['profiles'][name]['label']}` | {r['goodput']:.3f} |" in text
    assert f"| {best['after']['goodput'] / best['before']['goodput']:.2f}x |" in text
    # Every level of every profile, and the batching sweep.
    for name, entry in compare["profiles"].items():
        for level, r in entry["levels"].items():
            assert f"| {name} | {level} | {r['completed']}/{r['requests']} | {r['request_throughput']:.3f} |" in text
    for slots, r in compare["batching"].items():
        assert f"| {slots} | {r['concurrency']} | {r['request_throughput']:.3f} |" in text
    # The roofline share and the fidelity next to the speed.
    share = compare["roofline"]["after"]["decode_fraction_of_read_bandwidth"]
    assert f"| {share:.0%} |" in text
    for key, fid in compare["fidelity"].items():
        assert f"| {key} |" in text and f"| {fid['top1_agreement']:.3f} | {fid['mean_kl']:.2e} |" in text
    # The search: every dimension it stepped through, and where the choice went.
    for step in tune["searches"]["llamacpp"]["steps"]:
        assert f"| {step['dimension']} | {len(step['tried'])} |" in text
    assert tune["best"]["label"] in text


def test_the_report_only_reads(tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(FIXTURE, copy)
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    first = generate(tmp_path, copy)
    second = generate(tmp_path, copy)
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before

    def drop_time(text: str) -> str:
        return "\n".join(line for line in text.splitlines() if not line.startswith("- **Generated**"))

    assert drop_time(first) == drop_time(second)


def test_a_directory_without_compare_json_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("benchmarks.tune.report", str(tmp_path), "--out", str(tmp_path / "r.md"))
    assert result.returncode == 2 and "compare.json" in result.stderr and "Traceback" not in result.stderr
