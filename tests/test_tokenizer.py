from pathlib import Path

import pytest

from qwen3ops import tokenizer


def test_every_llamacpp_test_vector_matches(tokenizer_path: Path) -> None:
    vectors = tokenizer.test_vectors()
    assert len(vectors) >= 40
    assert tokenizer.check_vectors(tokenizer_path) == []


def test_transformers_autotokenizer_loads_it_with_qwen3_specials(tokenizer_path: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_path))
    assert len(tok) == 151669
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]) == [
        151643, 151644, 151645, 151667, 151668]
    prompt = tok.apply_chat_template([{"role": "user", "content": "你好"}], tokenize=False,
                                     add_generation_prompt=True)
    assert prompt == "<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n"
    # special tokens are single ids inside text, not split into pieces
    assert tok("<|im_start|>user")["input_ids"][0] == 151644


@pytest.mark.parametrize("text", [
    "客户反映手机信号很差，多次投诉未解决，要求尽快处理。",
    "您好，请问是138****5678机主吗？我们这边是中国移动客服。",
    "混合 text with English, 数字 12345 and emoji 🦙",
])
def test_chinese_text_round_trips_and_is_compact(tokenizer_path: Path, text: str) -> None:
    tok = tokenizer.load(str(tokenizer_path))
    ids = tok.encode(text, add_special_tokens=False).ids
    assert tok.decode(ids) == text
    chinese = sum("\u4e00" <= ch <= "\u9fff" for ch in text)
    if chinese / len(text) > 0.8:
        assert chinese / len(ids) > 1.2  # Qwen's vocabulary holds whole Chinese words, ~1.8 chars/token


def test_count_tokens(tokenizer_path: Path) -> None:
    assert tokenizer.count_tokens("Hello world", str(tokenizer_path)) == 2
