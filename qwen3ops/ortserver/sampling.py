"""Next-token selection from logits: greedy, or temperature / top-k / top-p sampling with a per-request seed.

Each request owns a numpy Generator (PCG64) seeded from its `seed`, so a seeded request gives the same
tokens whatever else is in the batch. Top-p never sorts the whole vocabulary: it widens a partial
selection (64, 512, 4096, ... tokens) until the kept probability mass reaches top_p, then sorts that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_NUCLEUS_STEPS = (64, 512, 4096)


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0  # 0 (or below 1e-4, where the softmax overflows) means greedy
    top_k: int = 0  # 0 means no top-k cut
    top_p: float = 1.0  # 1 means no nucleus cut
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature < 1e-4 or self.top_k == 1

    def rng(self) -> np.random.Generator:
        seed = None if self.seed is None else self.seed % (1 << 64)
        return np.random.Generator(np.random.PCG64(seed))


def sample(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator) -> int:
    """One token id from a [vocab] row of logits."""
    if params.greedy:
        return int(np.argmax(logits))
    vocab = logits.shape[0]
    if 0 < params.top_k < vocab:
        ids = np.argpartition(logits, vocab - params.top_k)[vocab - params.top_k:]
        scaled = logits[ids].astype(np.float64) / params.temperature
    else:
        ids = None
        scaled = logits.astype(np.float64) / params.temperature
    scaled -= scaled.max()
    probs = np.exp(scaled)
    probs /= probs.sum()
    if params.top_p < 1.0:
        order = _nucleus(probs, params.top_p)
        cumulative = np.cumsum(probs[order])
        cut = min(int(np.searchsorted(cumulative, params.top_p)) + 1, len(order))
        keep = order[:cut]
        ids = keep if ids is None else ids[keep]
        probs = probs[keep]
    cumulative = np.cumsum(probs)
    choice = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    choice = min(choice, len(probs) - 1)
    return int(choice if ids is None else ids[choice])


def _nucleus(probs: np.ndarray, top_p: float) -> np.ndarray:
    """Indices of the most probable entries, most probable first, holding at least top_p of the mass."""
    n = probs.shape[0]
    for size in _NUCLEUS_STEPS:
        if size >= n:
            break
        part = np.argpartition(probs, n - size)[n - size:]
        if probs[part].sum() >= top_p:
            return part[np.argsort(-probs[part], kind="stable")]
    return np.argsort(-probs, kind="stable")
