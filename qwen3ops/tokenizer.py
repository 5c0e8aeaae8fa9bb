"""The real Qwen2/Qwen3 byte-level BPE tokenizer, built offline; the one place that makes it.

Recipe (see ../shared/FACTS.md): the vocabulary and merges come from `models/ggml-vocab-qwen2.gguf`
in the pinned llama.cpp source; the pipeline is Qwen2's (NFC normalizer, the Qwen2 split regex,
byte-level encoding without its own regex); Qwen3's 26 added tokens (ids 151643..151668) and its
chat template complete it. The result passes every test vector shipped beside the vocabulary and is
written in the published Qwen3 file format (tokenizer.json, tokenizer_config.json, vocab.json,
merges.txt), so `transformers.AutoTokenizer` loads it.

    python -m qwen3ops.tokenizer build [--store DIR]     # build (cached) and print its directory
    python -m qwen3ops.tokenizer check                    # run the llama.cpp test vectors
    python -m qwen3ops.tokenizer count "文本" ...           # count tokens
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import lru_cache
from pathlib import Path

from qwen3ops import artifacts
from qwen3ops.errors import UserError
from qwen3ops.llamacpp_source import pinned_version, source_dir
from qwen3ops.paths import default_store

VOCAB_GGUF = "models/ggml-vocab-qwen2.gguf"
CHAT_TEMPLATE = "models/templates/Qwen-Qwen3-0.6B.jinja"
TEST_SEPARATOR = "\n__ggml_vocab_test__\n"
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
FIRST_ADDED_ID = 151643
# Qwen3's added tokens in id order from 151643, with their `special` flag as published.
ADDED_TOKENS: list[tuple[str, bool]] = [
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
]
FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")


def _read_vocab(path: Path) -> tuple[list[str], list[str]]:
    import gguf

    reader = gguf.GGUFReader(str(path))

    def strings(key: str) -> list[str]:
        field = reader.fields[key]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    return strings("tokenizer.ggml.tokens"), strings("tokenizer.ggml.merges")


def _added_tokens_decoder() -> dict[str, dict[str, object]]:
    return {
        str(FIRST_ADDED_ID + i): {
            "content": content,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": special,
        }
        for i, (content, special) in enumerate(ADDED_TOKENS)
    }


def tokenizer_config(chat_template: str) -> dict[str, object]:
    """tokenizer_config.json in the published Qwen3 format."""
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": _added_tokens_decoder(),
        "additional_special_tokens": [c for c, special in ADDED_TOKENS if special][1:],
        "bos_token": None,
        "chat_template": chat_template,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def write_tokenizer_files(dest: Path) -> dict[str, int]:
    """Build the tokenizer from the pinned llama.cpp source and write the published files into dest."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    src = source_dir()
    tokens, merges = _read_vocab(src / VOCAB_GGUF)
    # The GGUF pads the vocabulary to 151936 with control and [PAD] entries after the 151643 BPE
    # tokens; the BPE model takes the regular ones, Qwen3's added tokens replace the rest.
    if len(tokens) < FIRST_ADDED_ID or tokens[FIRST_ADDED_ID] != ADDED_TOKENS[0][0]:
        raise RuntimeError(f"{VOCAB_GGUF} is not the Qwen2 vocabulary this recipe expects")
    tokens = tokens[:FIRST_ADDED_ID]
    vocab = {token: i for i, token in enumerate(tokens)}
    merge_pairs = [tuple(m.split(" ", 1)) for m in merges]
    bpe = models.BPE(vocab=vocab, merges=merge_pairs, dropout=None, unk_token=None,
                     continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False,
                     byte_fallback=False, ignore_merges=False)
    tok = Tokenizer(bpe)
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.add_tokens([
        AddedToken(content, special=special, normalized=False, lstrip=False, rstrip=False, single_word=False)
        for content, special in ADDED_TOKENS
    ])
    for i, (content, _) in enumerate(ADDED_TOKENS):
        if tok.token_to_id(content) != FIRST_ADDED_ID + i:
            raise RuntimeError(f"added token {content} did not get id {FIRST_ADDED_ID + i}")

    dest.mkdir(parents=True, exist_ok=True)
    tok.save(str(dest / "tokenizer.json"))
    chat_template = (src / CHAT_TEMPLATE).read_text(encoding="utf-8")
    artifacts.write_json(dest / "tokenizer_config.json", tokenizer_config(chat_template))
    (dest / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (dest / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return {"vocab": len(tokens), "merges": len(merges), "added": len(ADDED_TOKENS)}


def tokenizer_dir(store: Path | None = None) -> Path:
    return (store or default_store()) / "tokenizers" / f"qwen3-llamacpp-{pinned_version()}"


def ensure_tokenizer(store: Path | None = None) -> tuple[Path, bool]:
    """The tokenizer artifact directory, built on first use. Returns (path, changed)."""
    dest = tokenizer_dir(store)
    if artifacts.read_manifest(dest) is not None and not artifacts.verify(dest, deep=False):
        return dest, False
    artifacts.clean_partials(dest.parent)
    description = {
        "kind": "tokenizer",
        "name": "Qwen2/Qwen3 byte-level BPE with Qwen3 added tokens and chat template",
        "source": f"llama-cpp-python=={pinned_version()} sdist: vendor/llama.cpp/{VOCAB_GGUF}, {CHAT_TEMPLATE}",
    }
    with artifacts.publish(dest, description) as tmp:
        counts = write_tokenizer_files(tmp)
        failures = check_vectors(tmp)
        if failures:
            raise RuntimeError(f"tokenizer fails {len(failures)} llama.cpp test vectors: {failures[:3]}")
        description.update(counts, test_vectors_passed=len(test_vectors()))
    return dest, True


def test_vectors() -> list[tuple[str, list[int]]]:
    """(text, expected ids) pairs shipped beside the vocabulary (llama.cpp's test-tokenizer-0 format)."""
    src = source_dir()
    raw_in = (src / (VOCAB_GGUF + ".inp")).read_text(encoding="utf-8")
    raw_out = (src / (VOCAB_GGUF + ".out")).read_text(encoding="utf-8")
    texts = raw_in.split(TEST_SEPARATOR)
    if texts and texts[-1] == "":
        texts.pop()
    expected = [[int(t) for t in line.split()] for line in raw_out.split("\n")[: len(texts)]]
    return list(zip(texts, expected, strict=True))


def check_vectors(path: Path) -> list[str]:
    """Descriptions of the test vectors the tokenizer at path gets wrong (empty: all pass)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    failures = []
    for text, ids in test_vectors():
        got = tok.encode(text, add_special_tokens=False).ids
        if got != ids:
            failures.append(f"{text!r}: expected {ids}, got {got}")
    return failures


@lru_cache(maxsize=4)
def load(path: str | None = None):  # -> tokenizers.Tokenizer
    """The tokenizer (from path, else the store's, built if needed), for counting tokens."""
    from tokenizers import Tokenizer

    directory = Path(path) if path else ensure_tokenizer()[0]
    return Tokenizer.from_file(str(directory / "tokenizer.json"))


def count_tokens(text: str, path: str | None = None) -> int:
    return len(load(path).encode(text, add_special_tokens=False).ids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qwen3ops.tokenizer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=None, help="artifact store (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build the tokenizer artifact (cached) and print its directory")
    sub.add_parser("check", help="run the llama.cpp test vectors against the built tokenizer")
    count = sub.add_parser("count", help="count tokens of each text argument")
    count.add_argument("texts", nargs="+")
    args = parser.parse_args(argv)
    try:
        path, changed = ensure_tokenizer(args.store)
        if args.command == "build":
            print(json.dumps({"changed": changed, "path": str(path)}))
        elif args.command == "check":
            failures = check_vectors(path)
            total = len(test_vectors())
            for failure in failures:
                print("FAIL", failure)
            print(f"{total - len(failures)}/{total} test vectors match")
            return 1 if failures else 0
        else:
            for text in args.texts:
                print(count_tokens(text, str(path)), text)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
