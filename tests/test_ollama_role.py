"""The ollama role: input validation, the cached archive's checksum, and the Modelfile's chat template.

The Ollama release cannot be downloaded here and no Ollama server runs in these tests: the role runs
with ansible-playbook against stand-ins built in tmp_path (a release archive whose bin/ollama only
answers `--version`, a GGUF artifact with a manifest), into a temporary root (ollama_root_prefix) or
a review directory (ollama_render_only_dir), with nothing written outside tmp_path.

The Go template in roles/ollama/files/qwen3-chat.gotmpl is checked against the model's Jinja chat
template: its structure always, and the exact prompt with Go's own text/template when `go` is
installed (apt-get install golang-go); Ollama renders its templates with text/template.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROLE = ROOT / "roles" / "ollama"
GO_TEMPLATE = ROLE / "files" / "qwen3-chat.gotmpl"
# Releases before 0.14.0 ship .tgz archives, which tarfile can build without zstd.
VERSION = "0.13.5"
GGUF_NAME = "qwen3-tiny-synthetic-Q4_K_M.gguf"
STANDIN_OLLAMA = f"""#!/bin/sh
# Stand-in for the Ollama binary (tests/test_ollama_role.py): it only reports its version.
if [ "$1" = "--version" ]; then
  echo "Warning: could not connect to a running Ollama instance"
  echo "Warning: client version is {VERSION}"
  exit 0
fi
exit 1
"""


def _arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(os.uname().machine, "amd64")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GGUF artifact in the store's format (the role copies the file and checks its sha256)."""
    path = tmp_path_factory.mktemp("artifact")
    data = b"GGUF stand-in for tests/test_ollama_role.py\n"
    (path / GGUF_NAME).write_bytes(data)
    manifest = {
        "kind": "gguf", "profile": "qwen3-tiny", "quant": "q4_k_m", "synthetic": True,
        "name": "qwen3-tiny-synthetic", "gguf_file": GGUF_NAME,
        "checkpoint": {"path": "/nonexistent/qwen3-tiny/synthetic-seed0"},
        "files": {GGUF_NAME: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}},
    }
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return path


def _standin_archive(dest: Path) -> str:
    """Write a release archive with the real layout into dest; return its sha256."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content, mode in (("./bin/ollama", STANDIN_OLLAMA.encode(), 0o755),
                                    ("./lib/ollama/libggml-base.so", b"stand-in\n", 0o644)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), mode
            tar.addfile(info, io.BytesIO(content))
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def run_role(tmp_path: Path, **extra_vars: object) -> subprocess.CompletedProcess[str]:
    """Run the role on this machine (connection local) with the given variables."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: true\n  gather_subset: [min]\n"
        "  roles: [ollama]\n", encoding="utf-8")
    variables = {
        "ansible_python_interpreter": sys.executable,
        "ollama_cache_dir": str(tmp_path / "cache"),
        "ollama_root_prefix": str(tmp_path / "root"),
        "ollama_download_base_url": str(tmp_path / "no-mirror"),  # never the network
        "ollama_version": VERSION,
        "ollama_manage_service": False, "ollama_create_model": False, "ollama_verify": False,
        "ollama_create_user": False, "ollama_user": "root", "ollama_group": "root",
        "ollama_service_manager": "systemd",
        **extra_vars,
    }
    (tmp_path / "vars.json").write_text(json.dumps(variables), encoding="utf-8")
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0",
           "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.run([str(Path(bindir) / "ansible-playbook"), "-i", "localhost,", str(playbook),
                           "-e", f"@{tmp_path / 'vars.json'}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


@dataclass
class Run:
    tmp: Path
    out: subprocess.CompletedProcess[str]

    @property
    def text(self) -> str:
        """The run's output with the callback's line wrapping undone."""
        return re.sub(r"\s+", " ", self.out.stdout + self.out.stderr)


# Each case is one ansible-playbook run; they run side by side (each takes seconds, mostly Ansible's
# start-up and fact gathering) to keep this file well under a minute.
CASES: dict[str, dict[str, object]] = {
    "short_sha256": {"ollama_sha256_amd64": "5d747a43369f61e3"},
    "host_without_port": {"ollama_host": "localhost"},
    "host_not_loopback": {"ollama_host": "0.0.0.0:11434"},
    "arch_given": {"ollama_arch": "riscv64"},
    "arch_detected": {"ansible_architecture": "riscv64"},  # extra vars override the gathered fact
    "cached_archive_wrong_sha256": {"ollama_sha256_amd64": "e" * 64, "ollama_sha256_arm64": "e" * 64},
    "render": {},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, artifact: Path) -> dict[str, Run]:
    def one(name: str) -> Run:
        tmp = tmp_path_factory.mktemp(name)
        extra = dict(CASES[name])
        if name == "cached_archive_wrong_sha256":
            _standin_archive(tmp / "cache" / VERSION / f"ollama-linux-{_arch()}.tgz")
        if name == "render":
            extra["ollama_render_only_dir"] = str(tmp / "review")
        return Run(tmp, run_role(tmp, ollama_model_artifact=str(artifact), **extra))

    with ThreadPoolExecutor(max_workers=len(CASES)) as pool:
        return dict(zip(CASES, pool.map(one, CASES), strict=True))


# --- Argument validation -------------------------------------------------------------------------

def test_sha256_of_the_wrong_length_is_refused_before_anything_is_done(runs: dict[str, Run]) -> None:
    run = runs["short_sha256"]
    assert run.out.returncode != 0
    assert "ollama_sha256_amd64" in run.text and "64 lowercase hex digits" in run.text, run.text[-3000:]
    assert not (run.tmp / "root").exists()


@pytest.mark.parametrize(("case", "message"), [
    ("host_without_port", "ollama_host (OLLAMA_HOST) must be address:port"),
    ("host_not_loopback", "set ollama_allow_remote: true"),
])
def test_bad_ollama_host_is_refused(runs: dict[str, Run], case: str, message: str) -> None:
    run = runs[case]
    assert run.out.returncode != 0
    assert message in run.text, run.text[-3000:]
    assert not (run.tmp / "root").exists()


def test_unknown_architecture_is_refused(runs: dict[str, Run]) -> None:
    # Given explicitly: the argument specification names the valid choices.
    run = runs["arch_given"]
    assert run.out.returncode != 0
    assert re.search(r"value of ollama_arch must be one of: auto, amd64, arm64, got: riscv64", run.text), \
        run.text[-3000:]
    # Detected from the host's facts: preflight says what to do.
    run = runs["arch_detected"]
    assert run.out.returncode != 0
    assert "has a riscv64 CPU" in run.text and "Ollama publishes Linux archives for amd64" in run.text, \
        run.text[-3000:]
    assert not (run.tmp / "root").exists()


# --- The cached archive --------------------------------------------------------------------------

def test_cached_archive_with_another_sha256_fails_before_install(runs: dict[str, Run]) -> None:
    run = runs["cached_archive_wrong_sha256"]
    archive = run.tmp / "cache" / VERSION / f"ollama-linux-{_arch()}.tgz"  # pre-0.14 releases are .tgz
    assert run.out.returncode != 0
    actual = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert f"has sha256 {actual}" in run.text and "Nothing was installed" in run.text, run.text[-3000:]
    # Nothing of the release reached the host, and the cache was not "repaired" by a download.
    assert not (run.tmp / "root" / "opt" / "qwen3-ops" / "ollama" / VERSION / "bin").exists()
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == actual


# --- The Modelfile and its chat template ---------------------------------------------------------

@pytest.fixture(scope="module")
def rendered(runs: dict[str, Run]) -> Path:
    """What the role renders for this host (ollama_render_only_dir), with the default settings."""
    run = runs["render"]
    assert run.out.returncode == 0, run.text[-3000:]
    assert not (run.tmp / "root").exists()  # rendering touches nothing else
    return run.tmp / "review" / "localhost"


def test_modelfile_carries_the_gguf_the_template_and_qwen3_parameters(rendered: Path) -> None:
    modelfile = (rendered / "Modelfile").read_text(encoding="utf-8")
    lines = modelfile.splitlines()
    assert f"FROM /opt/qwen3-ops/models/qwen3-tiny/synthetic-seed0/q4_k_m/{GGUF_NAME}" in lines
    template = re.search(r'^TEMPLATE """(.*?)"""$', modelfile, re.S | re.M)
    assert template and template.group(1) == GO_TEMPLATE.read_text(encoding="utf-8").rstrip("\n")
    for line in ("PARAMETER temperature 0.6", "PARAMETER top_p 0.95", "PARAMETER top_k 20",
                 "PARAMETER num_ctx 4096", 'PARAMETER stop "<|im_end|>"'):
        assert line in lines
    assert not any(line.startswith("PARAMETER num_thread") for line in lines)  # 0: Ollama's choice


def _jinja_prompt(tokenizer_path: Path, messages: list[dict], **kwargs: object) -> str:
    """The model's own chat template rendered as transformers renders it."""
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    config = json.loads((tokenizer_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False, indent=indent)
    return env.from_string(config["chat_template"]).render(messages=messages, add_generation_prompt=True,
                                                           **kwargs)


TWO_TURNS = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"},
             {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "2+2?"}]


def test_template_has_the_jinja_prompts_pieces(tokenizer_path: Path) -> None:
    template = GO_TEMPLATE.read_text(encoding="utf-8")
    prompt = _jinja_prompt(tokenizer_path, TWO_TURNS)
    assert prompt.startswith("<|im_start|>system\nYou are terse.<|im_end|>\n")
    assert prompt.endswith("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n")
    # Every fixed piece of that prompt is in the Go template as such.
    for piece in ("<|im_start|>system\n", "<|im_end|>\n", "<|im_start|>user\n", "<|im_start|>assistant\n"):
        assert piece in prompt and piece in template
    no_think = _jinja_prompt(tokenizer_path, TWO_TURNS, enable_thinking=False)
    assert no_think.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert "<think>\n\n</think>\n\n" in template and "$.IsThinkSet" in template


GO_RENDER = r"""
package main

// Renders a template with text/template and data shaped as Ollama passes it (System, Messages with
// Role/Content/Thinking/ToolCalls, Tools, Think, IsThinkSet); tool arguments and functions print as
// JSON, as Ollama's types do.
import (
	"encoding/json"
	"os"
	"text/template"
)

type Args map[string]any

func (a Args) String() string { b, _ := json.Marshal(map[string]any(a)); return string(b) }

type Call struct {
	Function struct {
		Name      string `json:"name"`
		Arguments Args   `json:"arguments"`
	} `json:"function"`
}
type Message struct {
	Role      string `json:"role"`
	Content   string `json:"content"`
	Thinking  string `json:"thinking"`
	ToolCalls []Call `json:"tool_calls"`
}
type Function struct {
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Parameters  map[string]any `json:"parameters"`
}

func (f Function) String() string { b, _ := json.Marshal(f); return string(b) }

type Tool struct {
	Type     string   `json:"type"`
	Function Function `json:"function"`
}

func main() {
	var in struct {
		Template   string     `json:"template"`
		System     string     `json:"system"`
		Messages   []*Message `json:"messages"`
		Tools      []Tool     `json:"tools"`
		Think      bool       `json:"think"`
		IsThinkSet bool       `json:"is_think_set"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	t := template.Must(template.New("").Parse(in.Template))
	values := map[string]any{"System": in.System, "Messages": in.Messages, "Tools": in.Tools,
		"Think": in.Think, "IsThinkSet": in.IsThinkSet, "Response": ""}
	if err := t.Execute(os.Stdout, values); err != nil {
		panic(err)
	}
}
"""


@pytest.fixture(scope="module")
def go_render(tmp_path_factory: pytest.TempPathFactory, rendered: Path):
    """Render the Modelfile's TEMPLATE with Go's text/template: render(system, messages, ...) -> prompt."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("`go` is not installed (apt-get install golang-go): exact Go template rendering not checked")
    build = tmp_path_factory.mktemp("gorender")
    (build / "render.go").write_text(GO_RENDER, encoding="utf-8")
    subprocess.run([go, "build", "-o", str(build / "render"), str(build / "render.go")], cwd=build, check=True,
                   capture_output=True, env={**os.environ, "GO111MODULE": "off"}, timeout=120)
    modelfile = (rendered / "Modelfile").read_text(encoding="utf-8")
    template = re.search(r'^TEMPLATE """(.*?)"""$', modelfile, re.S | re.M).group(1)

    def render(system: str, messages: list[dict], tools: list | None = None, think: bool | None = None) -> str:
        data = {"template": template, "system": system, "messages": messages, "tools": tools or [],
                "think": bool(think), "is_think_set": think is not None}
        out = subprocess.run([str(build / "render")], input=json.dumps(data), capture_output=True, text=True,
                             check=False, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout

    return render


@pytest.mark.parametrize("think", [None, False, True])
def test_go_template_renders_the_jinja_prompt_of_a_two_turn_conversation(go_render, tokenizer_path: Path,
                                                                          think: bool | None) -> None:
    kwargs = {} if think is None else {"enable_thinking": think}
    assert go_render("You are terse.", TWO_TURNS, think=think) == _jinja_prompt(tokenizer_path, TWO_TURNS, **kwargs)
    assert go_render("", TWO_TURNS[1:]) == _jinja_prompt(tokenizer_path, TWO_TURNS[1:])


def test_go_template_renders_the_jinja_prompt_of_tool_calls(go_render, tokenizer_path: Path) -> None:
    args = {"city": "Paris"}
    compact = json.dumps(args, separators=(",", ":"))  # what Go's json.Marshal prints
    calls = ("get_weather", "get_time")
    # Ollama's message: thinking and tool calls in fields of their own; the Jinja template's: the
    # same in reasoning_content and OpenAI-style tool_calls. Two tool results in a row share a turn.
    ollama = [{"role": "user", "content": "Weather?"},
              {"role": "assistant", "content": "", "thinking": "Need the tool.",
               "tool_calls": [{"function": {"name": n, "arguments": args}} for n in calls]},
              {"role": "tool", "content": "18C"}, {"role": "tool", "content": "noon"}]
    jinja = [{"role": "user", "content": "Weather?"},
             {"role": "assistant", "content": "", "reasoning_content": "Need the tool.",
              "tool_calls": [{"type": "function", "function": {"name": n, "arguments": compact}} for n in calls]},
             {"role": "tool", "content": "18C"}, {"role": "tool", "content": "noon"}]
    assert go_render("", ollama) == _jinja_prompt(tokenizer_path, jinja)
    more = [{"role": "assistant", "content": "Sunny, 18C."}, {"role": "user", "content": "Thanks"}]
    assert go_render("", ollama + more) == _jinja_prompt(tokenizer_path, jinja + more)


def test_go_template_lists_tools_like_the_jinja_template(go_render, tokenizer_path: Path) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
                                               "parameters": {"type": "object",
                                                              "properties": {"city": {"type": "string"}}}}}]
    go, jinja = go_render("You are terse.", TWO_TURNS, tools=tools), _jinja_prompt(tokenizer_path, TWO_TURNS,
                                                                                    tools=tools)
    # The same prompt, except for the JSON spacing of the tool definitions (Ollama prints them compactly).
    def split(prompt: str) -> tuple[str, list]:
        head, rest = prompt.split("<tools>\n", 1)
        body, tail = rest.split("\n</tools>", 1)
        return head + tail, [json.loads(line) for line in body.splitlines()]

    assert split(go) == split(jinja)
    assert split(jinja)[1] == tools
