"""The inventory variables file: valid YAML, only variables the roles declare, with values they accept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks.tune import inventory, space
from qwen3ops.paths import PROJECT_ROOT

LLAMA = space.Settings(backend="llamacpp", quant="q8_0", instances=2, threads=1, threads_batch=1, parallel=4,
                       ctx_per_slot=1024, batch_size=512, ubatch_size=256, cache_type_k="q8_0", cache_type_v="q8_0",
                       flash_attn="on", load_mode="mmap+mlock", prompt_cache="ram")
ORT = space.Settings(backend="onnxruntime", quant="int4", instances=1, threads=2, threads_batch=2, parallel=4,
                     ctx_per_slot=1024, ubatch_size=128)
SUMMARY = {"tool": "python -m benchmarks.tune", "measured_at": "2026-01-01T00:00:00+00:00", "host": "vm",
           "machine": "AMD EPYC, 2 logical CPUs, 24 GiB", "synthetic_weights": True, "profile": "qwen3-0.6b",
           "workload": "callcentre-zh", "slo": {"ttft": 4.0}, "memory_limit": "80%", "settings": "x",
           "goodput_rps": 0.5, "baseline_goodput_rps": 0.2, "peak_rss_per_instance_mib": 700}


def specs() -> dict[str, dict[str, Any]]:
    options: dict[str, dict[str, Any]] = {}
    for role in inventory.ROLES:
        path = PROJECT_ROOT / "roles" / role / "meta" / "argument_specs.yml"
        if path.is_file():
            options.update(yaml.safe_load(path.read_text())["argument_specs"]["main"]["options"])
    return options


TYPES = {"int": int, "str": str, "bool": bool, "dict": dict, "float": (int, float), "path": str, "list": list}


@pytest.mark.parametrize("settings", [LLAMA, ORT], ids=["llamacpp", "onnxruntime"])
def test_every_variable_is_declared_by_a_role_with_a_value_it_accepts(settings: space.Settings) -> None:
    variables = inventory.variables(settings, "qwen3-0.6b", 700 * 2**20, 1.25, SUMMARY)
    assert inventory.unknown_variables(variables) == []
    declared = specs()
    for name, value in variables.items():
        if name in inventory.PLAY_VARIABLES:
            continue
        spec = declared[name]
        assert isinstance(value, TYPES[spec["type"]]), (name, value, spec["type"])
        if "choices" in spec:
            assert value in spec["choices"], (name, value)
    assert variables["serve_backend"] == settings.backend


def test_llamacpp_variables_say_what_was_chosen() -> None:
    v = inventory.variables(LLAMA, "qwen3-0.6b", 700 * 2**20, 1.25, SUMMARY)
    assert v["llamacpp_server_ctx_size"] == 4 * 1024  # the engine's total: slots x context per slot
    assert (v["llamacpp_server_mmap"], v["llamacpp_server_mlock"]) == (True, True)
    assert v["llamacpp_server_cache_prompt"] is True and v["llamacpp_server_cache_ram"] == space.PROMPT_CACHE_RAM_MIB
    # 700 MiB x 1.25 = 875 MiB, rounded up to 64 MiB: 896 MiB for systemd and for the pod.
    assert v["llamacpp_server_systemd_memory_max"] == "896M"
    assert v["k8s_deploy_resources"] == {"requests": {"cpu": "1", "memory": "896Mi"}, "limits": {"memory": "896Mi"}}


def test_memory_ceiling_rounds_up_to_64_mib() -> None:
    assert inventory.memory_ceiling(64 * 2**20, 1.0) == 64
    assert inventory.memory_ceiling(64 * 2**20 + 1, 1.0) == 128
    assert inventory.memory_ceiling(1000 * 2**20, 1.25) == 1280


def test_the_file_is_yaml_with_a_header_and_is_rewritten_only_when_it_changes(tmp_path: Path) -> None:
    variables = inventory.variables(LLAMA, "qwen3-0.6b", 700 * 2**20, 1.25, SUMMARY)
    text = inventory.render(variables, ["Tuned by python -m benchmarks.tune", "", "SYNTHETIC weights"])
    assert text.startswith("---\n# Tuned by python -m benchmarks.tune\n#\n# SYNTHETIC weights\n")
    assert yaml.safe_load(text) == variables
    path = inventory.default_path(tmp_path / "inv", host="web1")
    assert path == tmp_path / "inv" / "host_vars" / "web1" / "tuned.yml"
    assert inventory.write(path, text) is True
    assert inventory.write(path, text) is False
    assert inventory.write(path, text + "# changed\n") is True
    assert inventory.default_path(tmp_path, group="linux_servers").parts[-3:] == ("group_vars", "linux_servers",
                                                                                   "tuned.yml")


def test_an_unknown_variable_is_reported() -> None:
    assert inventory.unknown_variables({"llamacpp_server_parallel": 4, "llamacpp_server_turbo": True}) == \
        ["llamacpp_server_turbo"]


@pytest.mark.parametrize("settings", [LLAMA, ORT], ids=["llamacpp", "onnxruntime"])
def test_a_tuned_file_reads_back_as_the_settings_it_was_written_from(settings: space.Settings,
                                                                    tmp_path: Path) -> None:
    variables = inventory.variables(settings, "qwen3-0.6b", 700 * 2**20, 1.25, SUMMARY)
    path = tmp_path / "tuned.yml"
    path.write_text(inventory.render(variables, ["header"]))
    back = space.load_settings(path)
    expected = settings if settings.backend == "llamacpp" else settings.replace(threads_batch=settings.threads)
    assert back == expected
