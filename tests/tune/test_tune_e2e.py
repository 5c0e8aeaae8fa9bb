"""The tuning play for real: qwen3-tiny served by our llama-server on loopback, a small search, the inventory
file written on the "controller", a second run that re-uses every measurement and changes nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.conftest import ROOT, run_cli

EXTRA = {
    "model_artifacts_profile": "qwen3-tiny",
    "tune_workload": "short-chat",
    "tune_temperature": 1.0,  # a tiny random model emits text only when sampling
    "tune_dimensions": ["quant", "parallel"],
    "tune_slo_ttft": 1.0,
    "tune_slo_tpot": 0.05,
    "tune_fidelity": False,
    "tune_port_base": 18300,
}


def play(inventory: Path, extra: dict) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "PYTHONPATH": str(ROOT)}
    return subprocess.run([str(ROOT / ".venv/bin/ansible-playbook"), "playbooks/tune.yml", "-i", str(inventory),
                           "-e", json.dumps(extra)], cwd=ROOT, env=env, capture_output=True, text=True, check=False,
                          timeout=600)


def recap(output: str) -> dict[str, int]:
    match = re.search(r"localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
    assert match, output[-3000:]
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups()), strict=True))


def test_tune_play_writes_the_inventory_and_a_rerun_reuses_everything(store: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    shutil.copytree(ROOT / "inventories" / "local", inventory)
    (inventory / "host_vars").mkdir(exist_ok=True)
    extra = {**EXTRA, "tune_store": str(store), "tune_cache_dir": str(tmp_path / "measurements"),
             "tune_output_dir": str(tmp_path / "out")}

    first = play(inventory, extra)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert recap(first.stdout)["changed"] >= 2  # new measurements, the file written

    tuned = inventory / "host_vars" / "localhost" / "tuned.yml"
    text = tuned.read_text()
    assert "SYNTHETIC weights" in text and "python -m benchmarks.tune" in text and "short-chat" in text
    variables = yaml.safe_load(text)
    assert variables["serve_backend"] == "llamacpp" and variables["model_artifacts_profile"] == "qwen3-tiny"
    assert variables["llamacpp_server_quant"] in ("f16", "q8_0", "q4_k_m")
    assert variables["llamacpp_server_parallel"] in (1, 2, 4, 8)
    assert re.fullmatch(r"\d+M", variables["llamacpp_server_systemd_memory_max"])
    assert variables["tune_summary"]["goodput_rps"] > 0
    record = json.loads((tmp_path / "out" / "tune.json").read_text())
    assert [s["dimension"] for s in record["searches"]["llamacpp"]["steps"]] == ["quant", "parallel"]
    assert record["meta"]["measured_chunks"] > 0

    # The next deployment sees the tuned values: host_vars win over the inventory's group_vars.
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    host = json.loads(subprocess.run([str(ROOT / ".venv/bin/ansible-inventory"), "-i", str(inventory), "--host",
                                      "localhost"], cwd=ROOT, env=env, capture_output=True, text=True,
                                     check=True).stdout)
    assert host["llamacpp_server_parallel"] == variables["llamacpp_server_parallel"]
    assert host["llamacpp_server_quant"] == variables["llamacpp_server_quant"]

    second = play(inventory, extra)
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap(second.stdout)["changed"] == 0  # every measurement re-used, the same file
    assert tuned.read_text() == text

    # The CLI says so itself.
    cli = run_cli("benchmarks.tune", "--profile", "qwen3-tiny", "--workload", "short-chat", "--temperature", "1.0",
                  "--dimensions", "quant,parallel", "--slo-ttft", "1.0", "--slo-tpot", "0.05", "--memory-limit", "80%",
                  "--store", str(store), "--cache-dir", str(tmp_path / "measurements"), "--out", str(tmp_path / "o2"),
                  "--port-base", "18300", "--no-fidelity", "--json")
    assert cli.returncode == 0, cli.stderr[-3000:]
    result = json.loads(cli.stdout.strip().splitlines()[-1])
    assert result["measured_chunks"] == 0 and result["reused_chunks"] > 0
    assert "reused" in cli.stderr and "measured " not in cli.stderr
    assert result["best"] == variables["tune_summary"]["settings"]
