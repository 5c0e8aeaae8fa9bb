"""Shared fixtures. The tokenizer is built once per session into a temporary artifact store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh artifact store holding the tokenizer (copied from the user's store when it is built)."""
    from qwen3ops import tokenizer

    path = tmp_path_factory.mktemp("store")
    cached = tokenizer.tokenizer_dir()
    if cached.is_dir() and not tokenizer.artifacts.verify(cached):
        shutil.copytree(cached, tokenizer.tokenizer_dir(path))
    tokenizer.ensure_tokenizer(path)
    return path


@pytest.fixture(scope="session")
def tokenizer_path(store: Path) -> Path:
    from qwen3ops import tokenizer

    return tokenizer.ensure_tokenizer(store)[0]


def run_cli(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `python -m <args>` the way a user would, from the project root."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=check)
