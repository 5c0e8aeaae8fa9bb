import json
from pathlib import Path

import pytest

from qwen3ops import profiles
from qwen3ops.errors import UserError

PUBLISHED = Path(__file__).parent / "fixtures" / "published"


@pytest.mark.parametrize(("profile", "repo"), [("qwen3-0.6b", "Qwen3-0.6B"), ("qwen3-1.7b", "Qwen3-1.7B")])
def test_profile_config_is_exactly_the_published_one(profile: str, repo: str) -> None:
    published = json.loads((PUBLISHED / f"{repo}.config.json").read_text())
    assert profiles.get(profile).config == published
    generation = json.loads((PUBLISHED / "Qwen3-0.6B.generation_config.json").read_text())
    assert profiles.get(profile).generation_config == generation


def test_parameter_counts_match_the_published_models() -> None:
    assert profiles.get("qwen3-0.6b").parameters == 596_049_920
    assert round(profiles.get("qwen3-1.7b").parameters / 1e9, 2) == 1.72


def test_tiny_profile_keeps_vocabulary_and_architecture() -> None:
    tiny, real = profiles.get("qwen3-tiny").config, profiles.get("qwen3-0.6b").config
    for key in ("vocab_size", "model_type", "architectures", "tie_word_embeddings", "rope_theta", "bos_token_id",
                "eos_token_id", "hidden_act", "rms_norm_eps"):
        assert tiny[key] == real[key], key
    assert tiny["hidden_size"] < 256 and tiny["num_hidden_layers"] <= 4


def test_unknown_profile_names_the_valid_ones() -> None:
    with pytest.raises(UserError, match=r"qwen3-0\.6b, qwen3-1\.7b, qwen3-tiny"):
        profiles.get("qwen3-8b")
