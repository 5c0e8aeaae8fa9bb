"""The server's settings: command-line options, each also settable as a QWEN3_ORT_<NAME> variable.

An option given on the command line wins over its environment variable, which wins over the default.
The API key is never an option (it would show in `ps`): it comes from --api-key-file (a file holding
the key, e.g. a mounted Kubernetes Secret) or from the variable QWEN3_ORT_API_KEY.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

ENV_PREFIX = "QWEN3_ORT_"


@dataclass(frozen=True)
class ServerConfig:
    model: Path
    host: str = "127.0.0.1"
    port: int = 8090
    model_name: str | None = None
    threads: int = 0
    spinning: bool = True
    max_batch_size: int = 4
    context_length: int = 4096
    max_queue: int = 16
    prefill_chunk: int = 512
    default_max_tokens: int = 512
    max_body_bytes: int = 4 * 1024 * 1024
    shutdown_timeout: float = 30.0
    retry_after: int = 1
    api_key: str | None = None
    log_level: str = "info"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name.upper().replace("-", "_"), default)


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def build_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m qwen3ops.ortserver", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)

    def option(name: str, default: str, help_text: str, **kwargs) -> None:
        env_default = _env(name.lstrip("-"), default)
        parser.add_argument(name, default=env_default, help=f"{help_text} [{ENV_PREFIX}"
                            f"{name.lstrip('-').upper().replace('-', '_')}, default: {default}]", **kwargs)

    option("--model", "", "ONNX model directory (made by python -m qwen3ops.onnx_export)")
    option("--host", "127.0.0.1", "address to listen on (keep loopback behind a load balancer)")
    option("--port", "8090", "port to listen on", type=int)
    option("--model-name", "", "the name clients use; empty: the manifest's (<profile>-<precision>"
           "[-synthetic])")
    option("--threads", "0", "onnxruntime intra-op threads; 0: one per core", type=_non_negative)
    option("--spinning", "true", "let idle onnxruntime threads spin between steps (lower latency, more CPU)",
           type=_bool)
    option("--max-batch-size", "4", "sequences decoded together (batch slots)", type=_positive)
    option("--context-length", "4096", "tokens per sequence (prompt + output); sets the key-value cache size",
           type=_positive)
    option("--max-queue", "16", "requests that may wait for a slot; beyond it: 503 with Retry-After",
           type=_non_negative)
    option("--prefill-chunk", "512", "prompt tokens per prefill step (interleaved with decode steps)",
           type=_positive)
    option("--default-max-tokens", "512", "tokens generated when a request sets no limit", type=_positive)
    option("--max-body-bytes", str(4 * 1024 * 1024), "largest request body accepted (413 beyond)",
           type=_positive)
    option("--shutdown-timeout", "30", "seconds running requests may take to finish after SIGTERM; "
           "then they are cancelled", type=float)
    option("--retry-after", "1", "seconds in the Retry-After header of a 503", type=_positive)
    option("--api-key-file", "", "file holding the API key clients must send as 'Authorization: Bearer <key>' "
           f"(or set {ENV_PREFIX}API_KEY); none: no authentication")
    option("--log-level", "info", "critical, error, warning, info or debug",
           choices=["critical", "error", "warning", "info", "debug"])
    return parser


def from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ServerConfig:
    if not args.model:
        parser.error(f"--model (or {ENV_PREFIX}MODEL) is required: an ONNX model directory")
    api_key = os.environ.get(ENV_PREFIX + "API_KEY") or None
    if args.api_key_file:
        try:
            api_key = Path(args.api_key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            parser.error(f"cannot read --api-key-file {args.api_key_file}: {exc.strerror}")
        if not api_key:
            parser.error(f"--api-key-file {args.api_key_file} is empty")
    return ServerConfig(
        model=Path(args.model), host=args.host, port=int(args.port), model_name=args.model_name or None,
        threads=int(args.threads), spinning=bool(args.spinning) if isinstance(args.spinning, bool)
        else _bool(args.spinning), max_batch_size=int(args.max_batch_size),
        context_length=int(args.context_length), max_queue=int(args.max_queue),
        prefill_chunk=int(args.prefill_chunk), default_max_tokens=int(args.default_max_tokens),
        max_body_bytes=int(args.max_body_bytes), shutdown_timeout=float(args.shutdown_timeout),
        retry_after=int(args.retry_after), api_key=api_key, log_level=args.log_level)
