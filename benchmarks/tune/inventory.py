"""The chosen configuration as inventory variables: `inventories/<env>/host_vars/<host>/tuned.yml`.

The file holds variables of the deployment roles only (their names are checked against the roles'
meta/argument_specs.yml), plus `serve_backend` (playbooks/serve.yml) and `tune_summary` (what the
status play shows), under a header that says what produced it, when, on which machine, and whether
the weights were synthetic. Memory ceilings come from the measured peak RSS of one instance times a
headroom, rounded up to 64 MiB: systemd's MemoryMax= per instance and the Kubernetes container's
requests and limits (one instance per pod).

The content depends only on the measurements (their newest timestamp, not the time of writing), so
re-running a search whose measurements all come from the cache rewrites the same bytes.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import yaml

from benchmarks.tune.space import Settings, role_variables
from qwen3ops.paths import PROJECT_ROOT

ROLES = ("llamacpp_server", "onnxruntime_server", "k8s_deploy", "model_artifacts")
# Variables read by plays rather than roles.
PLAY_VARIABLES = {"serve_backend": "playbooks/serve.yml", "tune_summary": "playbooks/status.yml"}
MIB = 2**20


def role_options(root: Path = PROJECT_ROOT) -> dict[str, set[str]]:
    """Every role's option names, from its meta/argument_specs.yml (roles without one are left out)."""
    options: dict[str, set[str]] = {}
    for role in ROLES:
        spec = root / "roles" / role / "meta" / "argument_specs.yml"
        if spec.is_file():
            data = yaml.safe_load(spec.read_text(encoding="utf-8"))
            options[role] = set(data["argument_specs"]["main"].get("options", {}))
    return options


def unknown_variables(variables: dict[str, Any], root: Path = PROJECT_ROOT) -> list[str]:
    known = set(PLAY_VARIABLES).union(*role_options(root).values())
    return sorted(set(variables) - known)


def memory_ceiling(peak_bytes: float, headroom: float = 1.25) -> int:
    """Peak x headroom, rounded up to 64 MiB, in MiB."""
    return int(math.ceil(peak_bytes * headroom / (64 * MIB)) * 64)


def variables(settings: Settings, profile: str, peak_rss_per_instance: float, headroom: float,
              summary: dict[str, Any]) -> dict[str, Any]:
    """The inventory variables of a chosen configuration."""
    ceiling = memory_ceiling(peak_rss_per_instance, headroom)
    out: dict[str, Any] = {"model_artifacts_profile": profile, **role_variables(settings, f"{ceiling}M")}
    if "k8s_deploy_resources" in role_options().get("k8s_deploy", set()):
        cpu = settings.threads_batch or settings.threads or 1
        out["k8s_deploy_resources"] = {"requests": {"cpu": str(cpu), "memory": f"{ceiling}Mi"},
                                       "limits": {"memory": f"{ceiling}Mi"}}
    out["tune_summary"] = summary
    return out


def default_path(inventory: Path, host: str | None = None, group: str | None = None) -> Path:
    if (host is None) == (group is None):
        raise ValueError("give exactly one of host or group")
    if host is not None:
        return inventory / "host_vars" / host / "tuned.yml"
    return inventory / "group_vars" / str(group) / "tuned.yml"


def render(variables_: dict[str, Any], header: list[str]) -> str:
    """The file's text: a YAML document whose header comments (wrapped at 100 columns) say where it comes from."""
    wrapped = [part for line in header for part in (textwrap.wrap(line, 98, subsequent_indent="  ") or [""])]
    lines = ["---", *(f"# {line}" if line else "#" for line in wrapped), ""]
    body = yaml.safe_dump(variables_, sort_keys=False, allow_unicode=True, default_flow_style=False, width=110)
    return "\n".join(lines) + body


def write(path: Path, text: str) -> bool:
    """Write text to path (atomically) unless it already holds exactly that; whether it changed."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True
