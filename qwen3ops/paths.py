"""Where the project keeps caches and artifacts outside the clone."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """The cache root: $QWEN3_OPS_CACHE, else ~/.cache/qwen3-ops (shared with scripts/*.sh)."""
    return Path(os.environ.get("QWEN3_OPS_CACHE", Path.home() / ".cache" / "qwen3-ops")).expanduser()


def default_store() -> Path:
    """The default artifact store (models, tokenizers, GGUF and ONNX exports)."""
    return cache_dir() / "artifacts"
