"""The model package the server loads: an onnxruntime-genai model-builder directory.

It holds `genai_config.json` (the decoder's file, inputs, outputs and shape; end-of-sequence ids;
default search settings), the ONNX model, the tokenizer (`tokenizer.json`, `tokenizer_config.json`
with the chat template) and, when made by `python -m qwen3ops.onnx_export`, a `manifest.json` that
names the model and says whether its weights are synthetic.

Text handling lives here too: prompts are encoded with the tokenizer file the package carries (the
project's tokenizer); chat messages are rendered with the package's chat template the way
transformers renders it (a sandboxed Jinja environment); generated tokens are turned back into text
byte by byte through an incremental UTF-8 decoder, so a character split across tokens is emitted
once it is complete and bytes that are not valid UTF-8 become U+FFFD instead of an error.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ModelPackageError(Exception):
    """The model directory is not a usable onnxruntime-genai package (the message says why)."""


@dataclass(frozen=True)
class SearchDefaults:
    """Sampling defaults from genai_config.json's `search` section (used when a request sets none)."""

    do_sample: bool = True
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0


@dataclass
class ModelPackage:
    path: Path
    name: str
    synthetic: bool
    profile: str
    precision: str
    decoder_file: Path
    layers: int
    kv_heads: int
    head_size: int
    vocab_size: int
    context_length: int
    eos_token_ids: tuple[int, ...]
    search: SearchDefaults
    manifest: dict[str, Any] = field(default_factory=dict)
    size_bytes: int = 0
    modified: str = ""

    @classmethod
    def load(cls, path: Path, name: str | None = None) -> ModelPackage:
        path = path.expanduser().resolve()
        config_path = path / "genai_config.json"
        if not config_path.is_file():
            raise ModelPackageError(f"{path} has no genai_config.json: point --model at a directory made by "
                                    "`python -m qwen3ops.onnx_export` (or the onnxruntime-genai model builder)")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
            model = config["model"]
            decoder = model["decoder"]
            eos = model["eos_token_id"]
            eos_ids = tuple(int(e) for e in (eos if isinstance(eos, list) else [eos]))
            search = config.get("search", {})
            defaults = SearchDefaults(do_sample=bool(search.get("do_sample", False)),
                                      temperature=float(search.get("temperature", 1.0)),
                                      top_k=int(search.get("top_k", 0)), top_p=float(search.get("top_p", 1.0)))
            layers, kv_heads = int(decoder["num_hidden_layers"]), int(decoder["num_key_value_heads"])
            head_size, decoder_file = int(decoder["head_size"]), path / decoder["filename"]
            vocab_size, context_length = int(model["vocab_size"]), int(model["context_length"])
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
            raise ModelPackageError(f"{config_path} is not a decoder-only genai_config ({exc!r})") from exc
        inputs = decoder.get("inputs", {})
        if "position_ids" in inputs or inputs.get("past_key_names") != "past_key_values.%d.key":
            raise ModelPackageError(f"{config_path}: the server needs a GroupQueryAttention decoder with "
                                    "past_key_values.%d.key/value inputs and no position_ids input (the "
                                    "model builder's CPU export)")
        if not decoder_file.is_file():
            raise ModelPackageError(f"{decoder_file} is missing")
        for needed in ("tokenizer.json", "tokenizer_config.json"):
            if not (path / needed).is_file():
                raise ModelPackageError(f"{path / needed} is missing")
        manifest = _read_json(path / "manifest.json") or {}
        profile = str(manifest.get("profile", model.get("type", "model")))
        precision = str(manifest.get("precision", "onnx"))
        synthetic = bool(manifest.get("synthetic", False))
        default_name = manifest.get("name") or f"{profile}-{precision}" + ("-synthetic" if synthetic else "")
        files = [p for p in path.iterdir() if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        mtime = max(p.stat().st_mtime for p in files)
        modified = dt.datetime.fromtimestamp(mtime, dt.timezone.utc).isoformat().replace("+00:00", "Z")
        return cls(path=path, name=name or str(default_name), synthetic=synthetic, profile=profile,
                   precision=precision, decoder_file=decoder_file, layers=layers, kv_heads=kv_heads,
                   head_size=head_size, vocab_size=vocab_size, context_length=context_length,
                   eos_token_ids=eos_ids, search=defaults, manifest=manifest, size_bytes=size, modified=modified)

    @property
    def digest(self) -> str:
        """A stable identifier of the weights: the model file's sha256 from the manifest, if known."""
        files = self.manifest.get("files", {})
        for key in (self.decoder_file.name + ".data", self.decoder_file.name):
            if key in files:
                return str(files[key]["sha256"])
        return ""


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level alphabet: every byte maps to one printable character."""
    visible = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = visible[:]
    extra = 0
    for b in range(256):
        if b not in visible:
            visible.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(visible, chars, strict=True)}


class TextCodec:
    """Encode prompts and render chat messages; map generated token ids to bytes."""

    def __init__(self, package_dir: Path, vocab_size: int) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(package_dir / "tokenizer.json"))
        spec = json.loads((package_dir / "tokenizer.json").read_text(encoding="utf-8"))
        if (spec.get("decoder") or {}).get("type") != "ByteLevel":
            raise ModelPackageError(f"{package_dir}/tokenizer.json is not a byte-level BPE tokenizer; "
                                    "the server decodes byte-level vocabularies only (Qwen2/Qwen3)")
        byte_of = {ch: b for b, ch in _bytes_to_unicode().items()}
        table: list[bytes] = [b""] * max(vocab_size, self._tokenizer.get_vocab_size(with_added_tokens=True))
        for token, index in spec["model"]["vocab"].items():
            if index < len(table):
                table[index] = bytes(byte_of[ch] for ch in token if ch in byte_of)
        self.special_ids: set[int] = set()
        for added in spec.get("added_tokens", []):
            if added["id"] < len(table):
                # Special tokens (<|im_end|>, ...) are control tokens: they are not part of the text.
                table[added["id"]] = b"" if added.get("special") else added["content"].encode("utf-8")
                if added.get("special"):
                    self.special_ids.add(int(added["id"]))
        self._bytes = table
        tokenizer_config = _read_json(package_dir / "tokenizer_config.json") or {}
        template = tokenizer_config.get("chat_template")
        template_file = package_dir / "chat_template.jinja"
        if not template and template_file.is_file():
            template = template_file.read_text(encoding="utf-8")
        if not isinstance(template, str) or not template:
            raise ModelPackageError(f"{package_dir} has no chat template (tokenizer_config.json chat_template)")
        self._template = _compile_template(template)
        self._template_vars = {"bos_token": tokenizer_config.get("bos_token") or "",
                               "eos_token": tokenizer_config.get("eos_token") or ""}

    def encode(self, text: str) -> list[int]:
        """Token ids of text; special-token strings in the text are read as those tokens (as in a chat
        prompt rendered by the template)."""
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def render_chat(self, messages: list[dict[str, Any]], add_generation_prompt: bool = True,
                    enable_thinking: bool | None = None) -> str:
        variables: dict[str, Any] = {**self._template_vars, "messages": messages,
                                     "add_generation_prompt": add_generation_prompt}
        if enable_thinking is not None:
            variables["enable_thinking"] = enable_thinking
        return self._template.render(**variables)

    def token_bytes(self, token_id: int) -> bytes:
        return self._bytes[token_id] if 0 <= token_id < len(self._bytes) else b""

    def decode(self, ids: list[int]) -> str:
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")


def _compile_template(source: str):  # -> jinja2.Template
    """Compile a chat template as transformers does (sandboxed, trim_blocks, lstrip_blocks, its filters)."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
               separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt: str) -> str:
        return dt.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


class Detokenizer:
    """Generated token ids -> text, incrementally: complete characters only, U+FFFD for invalid bytes."""

    def __init__(self, codec: TextCodec) -> None:
        self._codec = codec
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, token_id: int) -> str:
        return self._decoder.decode(self._codec.token_bytes(token_id))

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


class StopMatcher:
    """Finds stop strings in streamed text and holds back what could still become one.

    feed(delta) returns (text that is safe to emit, stopped). Once stopped, the text before the stop
    string has been emitted and nothing after it ever is.
    """

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._longest = max((len(s) for s in self._stops), default=0)
        self._pending = ""

    def feed(self, delta: str) -> tuple[str, bool]:
        if not self._stops:
            return delta, False
        self._pending += delta
        hits = [(i, s) for s in self._stops if (i := self._pending.find(s)) >= 0]
        if hits:
            index = min(i for i, _ in hits)
            out, self._pending = self._pending[:index], ""
            return out, True
        keep = 0
        for n in range(min(self._longest - 1, len(self._pending)), 0, -1):
            tail = self._pending[-n:]
            if any(s.startswith(tail) for s in self._stops):
                keep = n
                break
        cut = len(self._pending) - keep
        out, self._pending = self._pending[:cut], self._pending[cut:]
        return out, False

    def flush(self) -> str:
        out, self._pending = self._pending, ""
        return out
