"""Model profiles (qwen3ops/profiles.yml): the one home of each model's published configuration."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from qwen3ops.errors import UserError

PROFILES_FILE = Path(__file__).with_name("profiles.yml")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    hub_id: str | None
    config: dict[str, Any]
    generation_config: dict[str, Any]

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name and shape of every tensor of Qwen3ForCausalLM with this config, in file order."""
        c = self.config
        hidden, inter, head_dim = c["hidden_size"], c["intermediate_size"], c["head_dim"]
        q_out, kv_out = c["num_attention_heads"] * head_dim, c["num_key_value_heads"] * head_dim
        shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (c["vocab_size"], hidden)}
        for i in range(c["num_hidden_layers"]):
            p = f"model.layers.{i}."
            shapes.update({
                p + "input_layernorm.weight": (hidden,),
                p + "self_attn.q_proj.weight": (q_out, hidden),
                p + "self_attn.k_proj.weight": (kv_out, hidden),
                p + "self_attn.v_proj.weight": (kv_out, hidden),
                p + "self_attn.o_proj.weight": (hidden, q_out),
                p + "self_attn.q_norm.weight": (head_dim,),
                p + "self_attn.k_norm.weight": (head_dim,),
                p + "post_attention_layernorm.weight": (hidden,),
                p + "mlp.gate_proj.weight": (inter, hidden),
                p + "mlp.up_proj.weight": (inter, hidden),
                p + "mlp.down_proj.weight": (hidden, inter),
            })
        shapes["model.norm.weight"] = (hidden,)
        if not c["tie_word_embeddings"]:
            shapes["lm_head.weight"] = (c["vocab_size"], hidden)
        return shapes

    @property
    def parameters(self) -> int:
        total = 0
        for shape in self.tensor_shapes().values():
            n = 1
            for dim in shape:
                n *= dim
            total += n
        return total

    @property
    def bf16_bytes(self) -> int:
        return 2 * self.parameters


@lru_cache(maxsize=1)
def _load() -> dict[str, Profile]:
    data = yaml.safe_load(PROFILES_FILE.read_text(encoding="utf-8"))
    return {
        name: Profile(name=name, description=p["description"], hub_id=p.get("hub_id"),
                      config=dict(p["config"]), generation_config=dict(p["generation_config"]))
        for name, p in data["profiles"].items()
    }


def names() -> list[str]:
    return list(_load())


def get(name: str) -> Profile:
    profiles = _load()
    if name not in profiles:
        raise UserError(f"unknown model profile {name!r}; valid profiles: {', '.join(profiles)}")
    return profiles[name]
