"""The settings of one candidate server, the dimensions the search moves along, and the engine command lines.

A `Settings` is one candidate: backend, quantization and every engine knob the deployment roles
expose. A field left `None` is not passed to the engine, which then uses its own default (that is
how the "before" profile is described: the unquantized model with the engine's defaults).

A `Dimension` is one knob the search moves: its candidate values (which may depend on the host and
on the other settings) and how a value is applied. Dimensions come in priority order: what moves
goodput most first (quantization, parallel slots, threads and instances, micro-batch), what moves
memory most last (KV cache type, context bound, load mode, prompt cache).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qwen3ops.errors import UserError

LLAMACPP_QUANTS = ("q4_k_m", "q8_0", "f16")
ONNX_PRECISIONS = ("int4", "int8", "fp32")
BACKENDS = ("llamacpp", "onnxruntime")
# The prompt cache of llama-server: off (--no-cache-prompt), slots (each slot reuses its own last
# prompt, no host-memory cache: --cache-ram 0), ram (plus a host-memory cache of this many MiB).
PROMPT_CACHE_RAM_MIB = 512
PROMPT_CACHE_MODES = ("slots", "ram", "off")
LOAD_MODES = ("mmap", "none", "mmap+mlock")


@dataclass(frozen=True)
class Settings:
    """One candidate server configuration. None: the engine's own default (not passed)."""

    backend: str = "llamacpp"
    quant: str = "q4_k_m"
    instances: int = 1
    threads: int | None = None
    threads_batch: int | None = None
    parallel: int | None = None  # llama.cpp slots per instance; ONNX server: max batch size
    ctx_per_slot: int | None = None  # context tokens per slot; the engine's total is parallel x this
    batch_size: int | None = None  # llama.cpp logical batch
    ubatch_size: int | None = None  # llama.cpp physical micro-batch; ONNX server: prefill chunk
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    flash_attn: str | None = None  # on, off, auto
    load_mode: str | None = None  # mmap, none, mmap+mlock
    prompt_cache: str | None = None  # slots, ram, off

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def ctx_size(self) -> int | None:
        """The engine's total context (all slots), or None for its default."""
        if self.ctx_per_slot is None:
            return None
        return self.ctx_per_slot * (self.parallel or 1)

    @property
    def concurrency(self) -> int:
        """The closed-loop load that fills every slot of every instance once (the measured load level)."""
        return max(1, (self.parallel or 1) * self.instances)

    def label(self) -> str:
        """A short human label, e.g. `llamacpp q4_k_m x1 t2/2 np4 ctx1024 b2048 ub512 fa=on kv=f16 mmap pc=slots`."""
        parts = [self.backend, self.quant, f"x{self.instances}"]
        if self.threads is not None:
            parts.append(f"t{self.threads}/{self.threads_batch or self.threads}")
        numbers = (("np", self.parallel), ("ctx", self.ctx_per_slot), ("b", self.batch_size), ("ub", self.ubatch_size))
        parts += [f"{name}{value}" for name, value in numbers if value is not None]
        if self.flash_attn is not None:
            parts.append(f"fa={self.flash_attn}")
        if self.cache_type_k is not None:
            same = self.cache_type_k == self.cache_type_v
            parts.append(f"kv={self.cache_type_k if same else f'{self.cache_type_k}/{self.cache_type_v}'}")
        if self.load_mode is not None:
            parts.append(self.load_mode)
        if self.prompt_cache is not None:
            parts.append(f"pc={self.prompt_cache}")
        if len(parts) == 3:
            parts.append("(engine defaults)")
        return " ".join(parts)

    def problems(self) -> list[str]:
        """Why these settings cannot run (empty: they can)."""
        out = []
        quants = LLAMACPP_QUANTS if self.backend == "llamacpp" else ONNX_PRECISIONS
        if self.backend not in BACKENDS:
            out.append(f"unknown backend {self.backend}")
        elif self.quant not in quants:
            out.append(f"{self.backend} has no quantization {self.quant}")
        if self.batch_size is not None and self.ubatch_size is not None and self.ubatch_size > self.batch_size:
            out.append("ubatch_size > batch_size")
        quantized_v = self.cache_type_v not in (None, "f16", "f32", "bf16")
        if quantized_v and self.flash_attn == "off":
            out.append("a quantized V cache needs flash attention (on or auto)")
        if self.instances < 1 or (self.parallel is not None and self.parallel < 1):
            out.append("instances and parallel must be at least 1")
        return out


def from_role_variables(v: dict[str, Any]) -> Settings:
    """The Settings a set of role variables (e.g. a tuned.yml) describes: the inverse of role_variables."""
    if v.get("serve_backend", "llamacpp") == "onnxruntime":
        return Settings(backend="onnxruntime", quant=v.get("onnxruntime_server_precision", "int4"),
                        instances=int(v.get("onnxruntime_server_instances", 1)),
                        threads=v.get("onnxruntime_server_threads") or None,
                        threads_batch=v.get("onnxruntime_server_threads") or None,
                        parallel=int(v.get("onnxruntime_server_max_batch_size", 4)),
                        ctx_per_slot=int(v.get("onnxruntime_server_context_length", 4096)),
                        ubatch_size=int(v.get("onnxruntime_server_prefill_chunk", 512)))
    def g(name: str, default: Any) -> Any:
        return v.get(f"llamacpp_server_{name}", default)

    parallel = int(g("parallel", 4))
    mmap, mlock = bool(g("mmap", True)), bool(g("mlock", False))
    return Settings(
        backend="llamacpp", quant=g("quant", "q4_k_m"), instances=int(g("instances", 1)),
        threads=g("threads", 0) or None, threads_batch=g("threads_batch", 0) or None, parallel=parallel,
        ctx_per_slot=int(g("ctx_size", 4096)) // parallel, batch_size=int(g("batch_size", 2048)),
        ubatch_size=int(g("ubatch_size", 512)), cache_type_k=g("cache_type_k", "f16"),
        cache_type_v=g("cache_type_v", "f16"), flash_attn=g("flash_attn", "auto"),
        load_mode={(True, False): "mmap", (False, False): "none", (True, True): "mmap+mlock",
                   (False, True): "mlock"}[(mmap, mlock)],
        prompt_cache="off" if not g("cache_prompt", True) else ("ram" if int(g("cache_ram", 0)) else "slots"))


def load_settings(path: Path) -> Settings:
    """Settings from a tune.json (its best), an inventory file of role variables (a tuned.yml), or a YAML/JSON
    mapping of Settings fields."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read settings from {path}: {exc}") from exc
    if isinstance(data, dict) and "best" in data:
        data = data["best"]["settings"]
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a tune.json, a tuned.yml or a mapping of settings (backend, quant, ...)")
    if "serve_backend" in data or any(str(k).startswith(("llamacpp_server_", "onnxruntime_server_")) for k in data):
        return from_role_variables(data)
    settings = Settings.from_dict(data)
    if settings.problems():
        raise UserError(f"{path}: {'; '.join(settings.problems())}")
    return settings


@dataclass(frozen=True)
class Host:
    """What the search needs to know about the machine."""

    cpus: int
    memory_bytes: int


@dataclass(frozen=True)
class Dimension:
    """One knob of the search: its candidate values given the current settings, and how to apply one."""

    name: str
    values: Callable[[Settings, Host], list[Any]]
    apply: Callable[[Settings, Any], Settings]
    about: str = ""
    memory: bool = False  # a memory strategy: ties go to the value that uses less memory
    screen: bool = False  # decided on one chunk (its values move memory far more than speed)

    def candidates(self, current: Settings, host: Host) -> list[Settings]:
        """The settings this dimension proposes from `current` (current's own value included), valid ones only."""
        seen: dict[Settings, None] = {}
        for value in self.values(current, host):
            candidate = self.apply(current, value)
            if not candidate.problems():
                seen.setdefault(candidate, None)
        return list(seen)


def _threads_for(settings: Settings, host: Host) -> int:
    return max(1, host.cpus // settings.instances)


def _apply_instances(s: Settings, n: int) -> Settings:
    per = max(1, (s.threads_batch or s.threads or 1) * s.instances // n)
    return s.replace(instances=n, threads=per, threads_batch=per)


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1, n))))


@dataclass(frozen=True)
class Needs:
    """What the workload needs from a slot: the longest prompt and output it sends."""

    max_prompt_tokens: int
    max_output_tokens: int

    @property
    def ctx_per_slot(self) -> int:
        """The smallest power-of-two context that holds the longest request with the chat template
        (≈ 10 % plus 32 tokens around the counted message text)."""
        return max(512, _pow2_at_least(int(self.max_prompt_tokens * 1.1) + 32 + self.max_output_tokens))


def llamacpp_dimensions(needs: Needs) -> list[Dimension]:
    bound = needs.ctx_per_slot
    return [
        Dimension("quant", lambda s, h: list(LLAMACPP_QUANTS), lambda s, v: s.replace(quant=v),
                  "weights' quantization (bytes read per generated token)"),
        Dimension("parallel", lambda s, h: [1, 2, 4, 8], lambda s, v: s.replace(parallel=v),
                  "slots decoded together per instance (continuous batching)"),
        Dimension("instances", lambda s, h: sorted({1, min(2, h.cpus)}), _apply_instances,
                  "processes per host, the cores split between them", memory=True),
        Dimension("threads", lambda s, h: sorted({max(1, _threads_for(s, h) // 2), _threads_for(s, h)}),
                  lambda s, v: s.replace(threads=v), "generation threads per instance (prompt threads stay all)"),
        Dimension("ubatch_size", lambda s, h: [128, 256, 512],
                  lambda s, v: s.replace(ubatch_size=v, batch_size=max(v, s.batch_size or v)),
                  "physical micro-batch of prompt processing"),
        Dimension("flash_attn", lambda s, h: ["on", "off"], lambda s, v: s.replace(flash_attn=v),
                  "flash attention"),
        Dimension("kv_cache", lambda s, h: ["f16", "q8_0"],
                  lambda s, v: s.replace(cache_type_k=v, cache_type_v=v),
                  "KV cache data type (q8_0 halves its memory; needs flash attention)", memory=True, screen=True),
        Dimension("ctx_per_slot", lambda s, h: sorted({bound, 4096}), lambda s, v: s.replace(ctx_per_slot=v),
                  f"context per slot: the workload's bound ({bound}) or 4096", memory=True, screen=True),
        Dimension("batch_size", lambda s, h: sorted({s.ubatch_size or 512, 2048}),
                  lambda s, v: s.replace(batch_size=v), "logical batch"),
        Dimension("load_mode", lambda s, h: list(LOAD_MODES), lambda s, v: s.replace(load_mode=v),
                  "memory-map the weights, read them, or map and lock them", memory=True, screen=True),
        Dimension("prompt_cache", lambda s, h: list(PROMPT_CACHE_MODES), lambda s, v: s.replace(prompt_cache=v),
                  f"prompt reuse: per slot, plus a {PROMPT_CACHE_RAM_MIB} MiB host cache, or off", memory=True,
                  screen=True),
    ]


def onnx_dimensions(needs: Needs) -> list[Dimension]:
    bound = needs.ctx_per_slot
    return [
        Dimension("quant", lambda s, h: ["int4", "int8"], lambda s, v: s.replace(quant=v),
                  "weight-only quantization of the ONNX export"),
        Dimension("parallel", lambda s, h: [1, 2, 4, 8], lambda s, v: s.replace(parallel=v),
                  "sequences decoded together (batch slots)"),
        Dimension("instances", lambda s, h: sorted({1, min(2, h.cpus)}), _apply_instances,
                  "processes per host, the cores split between them", memory=True),
        Dimension("ubatch_size", lambda s, h: [128, 512], lambda s, v: s.replace(ubatch_size=v),
                  "prompt tokens per prefill step"),
        Dimension("ctx_per_slot", lambda s, h: sorted({bound, 4096}), lambda s, v: s.replace(ctx_per_slot=v),
                  f"context per slot: the workload's bound ({bound}) or 4096", memory=True, screen=True),
    ]


def dimensions(backend: str, needs: Needs) -> list[Dimension]:
    return llamacpp_dimensions(needs) if backend == "llamacpp" else onnx_dimensions(needs)


def baseline(backend: str, host: Host, needs: Needs) -> Settings:
    """Where the search starts: the deployment roles' defaults, one instance with every core."""
    if backend == "llamacpp":
        return Settings(backend="llamacpp", quant="q4_k_m", instances=1, threads=host.cpus, threads_batch=host.cpus,
                        parallel=4, ctx_per_slot=needs.ctx_per_slot, batch_size=2048, ubatch_size=512,
                        cache_type_k="f16", cache_type_v="f16", flash_attn="auto", load_mode="mmap",
                        prompt_cache="slots")
    return Settings(backend="onnxruntime", quant="int4", instances=1, threads=host.cpus, threads_batch=host.cpus,
                    parallel=4, ctx_per_slot=needs.ctx_per_slot, ubatch_size=512)


# --- the comparison profiles -------------------------------------------------------------------------

def before_profile() -> Settings:
    """"Before": the unquantized model, llama-server started with nothing but the model and an address."""
    return Settings(backend="llamacpp", quant="f16", instances=1)


@dataclass(frozen=True)
class Source:
    """Where a default comes from (cited in the report)."""

    setting: str
    value: str
    source: str


OLLAMA_ENVCONFIG = "https://github.com/ollama/ollama/blob/main/envconfig/config.go"
OLLAMA_TYPES = "https://github.com/ollama/ollama/blob/main/api/types.go"
OLLAMA_CONTEXT_DOC = ("https://raw.githubusercontent.com/ollama/ollama/948f69330acf96a2310f1b53fdfc211731a386d8/"
                      "docs/context-length.mdx")
OLLAMA_DEFAULT_SOURCES: tuple[Source, ...] = (
    Source("quantization", "Q4_K_M",
           "the quantization of Ollama's default library tags (`qwen3:0.6b`, `qwen3:1.7b`), as the tuning issue "
           "defines this profile; not checked against the registry from this machine (no access to ollama.com)"),
    Source("parallel requests (OLLAMA_NUM_PARALLEL)", "1",
           f"`NumParallel = Uint(\"OLLAMA_NUM_PARALLEL\", 1)` in {OLLAMA_ENVCONFIG}"),
    Source("context (num_ctx, OLLAMA_CONTEXT_LENGTH)", "4096",
           f"`ContextLength = Uint(\"OLLAMA_CONTEXT_LENGTH\", 4096)` in {OLLAMA_ENVCONFIG}; releases that choose "
           f"by VRAM give \"< 24 GiB VRAM: 4k context\" ({OLLAMA_CONTEXT_DOC}), which is every CPU-only host"),
    Source("threads (num_thread)", "physical cores",
           f"`NumThread: 0, // let the runtime decide` in DefaultOptions, {OLLAMA_TYPES}: the runner then uses "
           "the physical cores"),
    Source("batch (num_batch)", "512", f"`NumBatch: 512` in DefaultOptions, {OLLAMA_TYPES}"),
    Source("flash attention (OLLAMA_FLASH_ATTENTION)", "off",
           f"`FlashAttention(false)` unless the variable is set, {OLLAMA_ENVCONFIG}"),
    Source("KV cache type (OLLAMA_KV_CACHE_TYPE)", "f16",
           f"empty unless set ({OLLAMA_ENVCONFIG}), which the runner takes as f16"),
    Source("memory map (use_mmap)", "on",
           f"`UseMMap` left undefined in DefaultOptions ({OLLAMA_TYPES}): llama.cpp's default, mmap"),
)


def ollama_profile(physical_cores: int) -> Settings:
    """Ollama's defaults for this model, as llama-server settings (sources: OLLAMA_DEFAULT_SOURCES)."""
    return Settings(backend="llamacpp", quant="q4_k_m", instances=1, threads=physical_cores,
                    threads_batch=physical_cores, parallel=1, ctx_per_slot=4096, batch_size=512, ubatch_size=512,
                    cache_type_k="f16", cache_type_v="f16", flash_attn="off", load_mode="mmap", prompt_cache="slots")


# --- engine command lines ----------------------------------------------------------------------------

def llamacpp_argv(s: Settings, binary: str, model: str, port: int, alias: str) -> list[str]:
    """llama-server's command line for these settings (options left None are not passed)."""
    argv = [binary, "-m", model, "--host", "127.0.0.1", "--port", str(port), "-a", alias, "--no-webui"]
    pairs: list[tuple[str, Any]] = [
        ("-t", s.threads), ("-tb", s.threads_batch), ("-np", s.parallel), ("-c", s.ctx_size),
        ("-b", s.batch_size), ("-ub", s.ubatch_size), ("-ctk", s.cache_type_k), ("-ctv", s.cache_type_v),
        ("-fa", s.flash_attn), ("--load-mode", s.load_mode),
    ]
    argv += [str(x) for flag, value in pairs if value is not None for x in (flag, value)]
    if s.prompt_cache == "off":
        argv += ["--no-cache-prompt", "--cache-ram", "0"]
    elif s.prompt_cache == "slots":
        argv += ["--cache-ram", "0"]
    elif s.prompt_cache == "ram":
        argv += ["--cache-ram", str(PROMPT_CACHE_RAM_MIB)]
    return argv


def onnx_argv(s: Settings, python: str, model_dir: str, port: int) -> list[str]:
    argv = [python, "-m", "qwen3ops.ortserver", "--model", model_dir, "--host", "127.0.0.1", "--port", str(port),
            "--max-queue", "256", "--log-level", "warning"]
    pairs: list[tuple[str, Any]] = [("--threads", s.threads), ("--max-batch-size", s.parallel),
                                    ("--context-length", s.ctx_per_slot), ("--prefill-chunk", s.ubatch_size)]
    return argv + [str(x) for flag, value in pairs if value is not None for x in (flag, value)]


# --- role variables ----------------------------------------------------------------------------------

def role_variables(s: Settings, memory_max: str) -> dict[str, Any]:
    """The variables of roles llamacpp_server / onnxruntime_server (and serve_backend) for these settings."""
    if s.backend == "llamacpp":
        mmap = s.load_mode in (None, "mmap", "mmap+mlock")
        return {
            "serve_backend": "llamacpp",
            "llamacpp_server_quant": s.quant,
            "llamacpp_server_instances": s.instances,
            "llamacpp_server_threads": s.threads or 0,
            "llamacpp_server_threads_batch": s.threads_batch or 0,
            "llamacpp_server_parallel": s.parallel or 4,
            "llamacpp_server_ctx_size": s.ctx_size or 4096,
            "llamacpp_server_batch_size": s.batch_size or 2048,
            "llamacpp_server_ubatch_size": s.ubatch_size or 512,
            "llamacpp_server_cache_type_k": s.cache_type_k or "f16",
            "llamacpp_server_cache_type_v": s.cache_type_v or "f16",
            "llamacpp_server_flash_attn": s.flash_attn or "auto",
            "llamacpp_server_mmap": mmap,
            "llamacpp_server_mlock": s.load_mode == "mmap+mlock",
            "llamacpp_server_cache_prompt": s.prompt_cache != "off",
            "llamacpp_server_cache_ram": PROMPT_CACHE_RAM_MIB if s.prompt_cache == "ram" else 0,
            "llamacpp_server_systemd_memory_max": memory_max,
        }
    return {
        "serve_backend": "onnxruntime",
        "onnxruntime_server_precision": s.quant,
        "onnxruntime_server_instances": s.instances,
        "onnxruntime_server_threads": s.threads or 0,
        "onnxruntime_server_max_batch_size": s.parallel or 4,
        "onnxruntime_server_context_length": s.ctx_per_slot or 4096,
        "onnxruntime_server_prefill_chunk": s.ubatch_size or 512,
        "onnxruntime_server_systemd_memory_max": memory_max,
    }
