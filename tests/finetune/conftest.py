"""Fixtures of the fine-tuning tests: the shared real data (always present in CI) and small files."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
MOBILECS = SHARED / "mobilecs" / "mobilecs_example.json"
COCC = SHARED / "cocc"


@pytest.fixture(scope="session")
def qwen_tokenizer(tokenizer_path: Path):  # -> tokenizers.Tokenizer
    from qwen3ops import tokenizer

    return tokenizer.load(str(tokenizer_path))


@pytest.fixture(scope="session")
def mobilecs() -> Path:
    assert MOBILECS.is_file(), f"{MOBILECS} is missing: the shared data folder must sit beside the project"
    return MOBILECS


@pytest.fixture(scope="session")
def cocc() -> Path:
    assert (COCC / "cocc_train.tsv").is_file(), f"{COCC} is missing: the shared data folder must sit beside the project"
    return COCC
