"""A real sweep against a real llama-server on loopback, with the qwen3-tiny model: every report file."""

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qwen3ops import gguf, provision
from tests.conftest import run_cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_server(store: Path) -> Iterator[tuple[str, Path, int]]:
    checkpoint = provision.provision("qwen3-tiny", "synthetic", store, progress=False)["path"]
    out = run_cli("qwen3ops.gguf", "--checkpoint", checkpoint, "--quant", "q8_0", "--store", str(store), "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    model = Path(json.loads(out.stdout.strip().splitlines()[-1])["files"]["q8_0"])
    port = _free_port()
    server = subprocess.Popen([str(gguf.llamacpp_bin_dir(None) / "llama-server"), "-m", str(model), "--host",
                               "127.0.0.1", "--port", str(port), "-t", "1", "--parallel", "2", "-c", "2048",
                               "--metrics", "-a", "qwen3-tiny-q8_0-synthetic"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("llama-server did not become healthy")
        yield url, model, server.pid
    finally:
        server.terminate()
        server.wait(30)


def test_sweep_writes_every_report_file_with_plots(tiny_server: tuple[str, Path, int], tmp_path: Path) -> None:
    url, model, pid = tiny_server
    out = tmp_path / "run"
    result = run_cli("benchmarks", "run", "--url", url, "--workload", "short-chat", "--concurrency", "1,2",
                     "--requests", "4", "--pid", str(pid), "--sample-interval", "0.1", "--model-file", str(model),
                     "--profile", "qwen3-tiny", "--threads", "1", "--temperature", "1.0", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("records.jsonl", "resources.jsonl", "summary.csv", "summary.json", "report.md", "report.html"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for plot in ("throughput", "latency", "distributions", "resources"):
        png = out / "plots" / f"{plot}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, plot
    summary = json.loads((out / "summary.json").read_text())
    assert [lvl["level"] for lvl in summary["levels"]] == ["c1", "c2"]
    for level in summary["levels"]:
        assert level["completed"] == 4 and level["failed"] == 0
        assert level["output_throughput"] > 0 and level["ttft_p50"] > 0
    samples = [json.loads(line) for line in (out / "resources.jsonl").read_text().splitlines()]
    assert all(0 < s["server_rss_bytes"] < 2**30 for s in samples)  # this tiny server's process, sampled
    assert {s["level"] for s in samples} >= {"c1"}
    meta = summary["meta"]
    assert meta["server"]["synthetic"] is True and meta["server"]["backend"] == "llama.cpp"
    assert meta["server"]["quantization"] == "Q8_0"
    assert meta["selfcheck_rps"] > 0 and "loadgen_cpu_percent_mean" in meta
    assert meta["hardware"]["read_bandwidth_bytes_per_s"] > 0
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == 8 and all(r["output_tokens"] == 32 for r in records)  # ignore_eos: fixed length
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "SYNTHETIC weights" in html
    compare = run_cli("benchmarks", "compare", str(out), str(out))
    assert compare.returncode == 0
    assert compare.stdout.count("| run | model |") == 1 and compare.stdout.count("| c1 |") == 2
