"""playbooks/finetune.yml on this machine: check mode trains nothing; a real run fetches the report; a second
run reuses it (changed=0)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "playbooks" / "finetune.yml"


def play(tmp_path: Path, extra: dict, *args: str) -> subprocess.CompletedProcess[str]:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  children:\n    finetune_hosts:\n      hosts:\n        localhost:\n"
        "          ansible_connection: local\n"
        f"          ansible_python_interpreter: {sys.executable}\n", encoding="utf-8")
    command = [str(Path(sys.executable).parent / "ansible-playbook"), str(PLAYBOOK), "-i", str(inventory),
               "-e", json.dumps(extra), *args]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def recap(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("localhost") and "ok=" in line)


def extra_vars(tmp_path: Path, store: Path) -> dict:
    return {
        "finetune_config": "finetune/configs/tiny-synthetic.yml",
        "finetune_overrides": ["data.synthetic.per_class=4", "train.epochs=1", "preprocess.max_tokens=48",
                               f"model.store={store}"],
        "finetune_output_dir": str(tmp_path / "runs"),
        "finetune_fetch_dir": str(tmp_path / "fetched"),
        "finetune_python": sys.executable,
        "finetune_poll": 2,
    }


def test_check_mode_trains_nothing(tmp_path: Path, store: Path) -> None:
    result = play(tmp_path, extra_vars(tmp_path, store), "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Check mode: would run nice -n 10" in result.stdout and "--set=data.synthetic.per_class=4" in result.stdout
    assert not (tmp_path / "runs").exists()


def test_bad_input_fails_in_preflight_with_a_message(tmp_path: Path, store: Path) -> None:
    result = play(tmp_path, {**extra_vars(tmp_path, store), "finetune_overrides": ["not an override"]})
    assert result.returncode != 0
    assert "finetune_overrides must be key.path=value strings" in result.stdout


@pytest.mark.slow
def test_playbook_runs_the_pipeline_fetches_the_report_and_is_idempotent(tmp_path: Path, store: Path) -> None:
    extra = extra_vars(tmp_path, store)
    first = play(tmp_path, extra)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "changed=0" not in recap(first.stdout)  # trained, and fetched the report
    fetched = tmp_path / "fetched" / "localhost"
    assert "Weights: SYNTHETIC" in (fetched / "report.md").read_text(encoding="utf-8")
    assert (fetched / "report.html").is_file() and (fetched / "curves.png").is_file()
    result = json.loads((fetched / "result.json").read_text(encoding="utf-8"))
    assert result["test"]["n"] > 0 and result["export"]
    second = play(tmp_path, extra)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "changed=0" in recap(second.stdout)
