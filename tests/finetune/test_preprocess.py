"""Preprocessing on the 10 real MobileCS call transcripts, on synthetic calls, and the dataset steps."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from finetune import config, preprocess, readers, synthetic, taxonomy
from finetune.preprocess import Example

SETTINGS = config.DEFAULTS["preprocess"]


@pytest.fixture(scope="module")
def mobilecs_examples(mobilecs: Path, qwen_tokenizer) -> list[tuple[readers.Record, Example]]:
    out = []
    for record in readers.read(mobilecs):
        example, _ = preprocess.render_record(record, SETTINGS, qwen_tokenizer, Counter())
        out.append((record, example))
    return out


def test_mobilecs_roles_are_right(mobilecs: Path) -> None:
    # In MobileCS, [SPEAKER 1] is the agent (客服意图) and [SPEAKER 2] the customer (用户意图): the
    # inference must find that from the words alone, for every one of the 10 calls.
    from finetune import cleaning

    raw = json.loads(mobilecs.read_text(encoding="utf-8"))
    assert all("客服意图" in pair and "用户意图" in pair for call in raw for pair in call["content"])
    for record in readers.read(mobilecs):
        mapping, _ = cleaning.infer_roles(record.turns)
        assert mapping == {"speaker1": "agent", "speaker2": "customer"}, record.id


def test_mobilecs_rendering_alternates_tagged_roles(mobilecs_examples) -> None:
    for _, example in mobilecs_examples:
        lines = [line for line in example.text.split("\n") if line != preprocess.GAP]
        assert all(line.startswith(("客服：", "客户：")) for line in lines), example.text
        roles = [line[:2] for line in lines]
        # consecutive turns of one speaker are merged, except across the head/tail gap
        merged_ok = all(a != b for a, b in itertools.pairwise(roles)) or preprocess.GAP in example.text
        assert merged_ok, example.text
        assert lines[0].startswith("客服：")  # every call opens with the agent's greeting


def test_mobilecs_no_pii_left(mobilecs_examples) -> None:
    texts = "\n".join(e.text for _, e in mobilecs_examples)
    for secret in ("孟凡强", "466205", "YD幺五幺", "YD151", "00000000000", "0000000"):
        assert secret not in texts
    assert pii_like(texts) == []
    masked = Counter()
    for _, e in mobilecs_examples:
        masked.update(e.pii)
    assert masked["NAME"] >= 1 and masked["ACCOUNT"] >= 2 and masked["REDACTED"] >= 2 and masked["NUMBER"] >= 1


def pii_like(text: str) -> list[str]:
    found = re.findall(r"\d{5,}", text) + re.findall(r"[A-Za-z]{1,4}\d{3,}", text)
    return found + re.findall(r"[零〇一二三四五六七八九幺]{5,}", text)


def test_mobilecs_noise_removed_and_budget_kept(mobilecs_examples, qwen_tokenizer) -> None:
    for _, example in mobilecs_examples:
        assert "[UNK]" not in example.text and "_" not in example.text
        assert not re.search(r"[嗯呃唉]", example.text)
        count = len(qwen_tokenizer.encode(example.text, add_special_tokens=False).ids)
        assert count == example.tokens <= SETTINGS["max_tokens"]
        assert example.truncated == (example.tokens_before > SETTINGS["max_tokens"])
        if example.truncated:
            assert preprocess.GAP in example.text
            # head and tail are whole turns of the original call: first and last turns survive
            last = example.text.split("\n")[-1]
            assert last.startswith(("客服：", "客户："))


def test_head_and_tail_are_kept_at_turn_boundaries(qwen_tokenizer) -> None:
    lines = [f"客户：第{i}句话，内容是关于话费的问题" for i in range(40)]
    kept, truncated = preprocess.fit(lines, 64, 0.5, qwen_tokenizer)
    assert truncated and kept[0] == lines[0] and kept[-1] == lines[-1] and preprocess.GAP in kept
    assert all(line in lines for line in kept if line != preprocess.GAP)
    assert len(qwen_tokenizer.encode("\n".join(kept), add_special_tokens=False).ids) <= 64


def test_a_single_long_turn_is_cut_at_a_token_boundary(qwen_tokenizer) -> None:
    kept, truncated = preprocess.fit(["客户反映" * 200], 50, 0.7, qwen_tokenizer)
    assert truncated and len(qwen_tokenizer.encode("\n".join(kept), add_special_tokens=False).ids) <= 50
    assert "\ufffd" not in "".join(kept)


def test_customer_only_rendering(mobilecs: Path, qwen_tokenizer) -> None:
    record = readers.read(mobilecs)[0]
    example, _ = preprocess.render_record(record, {**SETTINGS, "roles": ["customer"]}, qwen_tokenizer, Counter())
    assert "客服：" not in example.text and example.text.startswith("客户：")


def test_synthetic_calls_are_masked_completely(qwen_tokenizer) -> None:
    counts: Counter[str] = Counter()
    for record in synthetic.generate(10, seed=3):
        example, _ = preprocess.render_record(record, {**SETTINGS, "max_tokens": 1024}, qwen_tokenizer, counts)
        assert pii_like(example.text) == [], example.text
        assert "@" not in example.text
    assert {"PHONE", "ID_CARD", "NAME"} <= set(counts)


def test_synthetic_generator_is_seeded_and_covers_all_classes() -> None:
    a = [synthetic.to_json(r) for r in synthetic.generate(3, seed=7)]
    b = [synthetic.to_json(r) for r in synthetic.generate(3, seed=7)]
    c = [synthetic.to_json(r) for r in synthetic.generate(3, seed=8)]
    assert a == b and a != c
    assert Counter(r["label"] for r in a) == {slug: 3 for slug in taxonomy.load(config.DEFAULT_LABELS).slugs}


def _ex(i: int, text: str, label: str) -> Example:
    return Example(id=str(i), text=text, label=label, tokens=1, tokens_before=1, truncated=False, source="t",
                   kind="text")


def test_dedup_keeps_first_and_drops_conflicts() -> None:
    examples = [_ex(1, "话费不对。", "a"), _ex(2, "话费不对", "a"), _ex(3, "信号差", "b"), _ex(4, "信号差！", "c"),
                _ex(5, "其他", "a")]
    kept, stats = preprocess.dedup(examples)
    assert [e.id for e in kept] == ["1", "5"]
    assert stats == {"duplicates_removed": 1, "conflicting_removed": 2}


def test_stratified_split_is_seeded_and_per_class() -> None:
    examples = [_ex(i, f"t{i}", "a" if i < 80 else "b") for i in range(100)]
    rest, held = preprocess.stratified_split(examples, 0.1, seed=1)
    assert Counter(e.label for e in held) == {"a": 8, "b": 2}
    assert len(rest) + len(held) == 100 and not {e.id for e in rest} & {e.id for e in held}
    assert [e.id for e in preprocess.stratified_split(examples, 0.1, seed=1)[1]] == [e.id for e in held]


def test_build_writes_splits_and_data_report(tmp_path: Path, qwen_tokenizer) -> None:
    data = tmp_path / "calls.jsonl"
    data.write_text("".join(json.dumps(synthetic.to_json(r), ensure_ascii=False) + "\n"
                            for r in synthetic.generate(6, seed=1)), encoding="utf-8")
    cfg = config.load(None, [f"data.train={data}", "data.test_fraction=0.2", "data.validation_fraction=0.2"])
    dataset = preprocess.build(cfg, qwen_tokenizer, taxonomy.load(cfg["labels"]))
    assert sum(dataset.report["sizes"].values()) == 60
    assert all(dataset.report["counts"]["test"][c] >= 1 for c in dataset.labels)
    preprocess.write(dataset, tmp_path / "out")
    md = (tmp_path / "out" / "data_report.md").read_text(encoding="utf-8")
    assert "PII masked:" in md and "| billing_dispute |" in md
    assert len(preprocess.load_split(tmp_path / "out" / "train.jsonl")) == dataset.report["sizes"]["train"]


def test_cocc_builds_with_held_out_dev(cocc: Path, qwen_tokenizer) -> None:
    cfg = config.load(config.PACKAGE_DIR / "configs" / "tiny-cocc.yml", [f"data.dir={cocc}"])
    dataset = preprocess.build(cfg, qwen_tokenizer, taxonomy.load(cfg["labels"]))
    report = dataset.report
    assert report["sizes"]["test"] == 234 and report["unused_classes"] == ["other_complaint", "non_complaint"]
    assert report["pii"]["REDACTED"] > 1000 and report["pii_leftovers"] == 0
    assert not {e.text for e in dataset.splits["train"]} & {e.text for e in dataset.splits["test"]}


def test_duplicates_judged_on_the_whole_call_leaks_on_what_the_model_sees(tmp_path: Path, qwen_tokenizer) -> None:
    head = "客户反映本月话费多扣了五十元，要求核实退费。" * 3
    tail = "请尽快处理，谢谢。"
    rows = {
        "train.tsv": [(head + "中间部分甲" * 30 + tail, "费用问题"), (head + "中间部分乙" * 30 + tail, "费用问题"),
                      ("客户反映充值五十元没有到账", "费用问题"),
                      ("客户反映信号差，打不了电话", "网络问题"), ("客户反映宽带网速慢", "网络问题"),
                      ("客户反映没订过彩铃被扣费", "不知情定制问题"),
                      ("客户反映视频会员不是自己订的", "不知情定制问题")],
        "test.tsv": [(head + "中间部分丙" * 30 + tail, "费用问题"), ("客户反映家里没有信号", "网络问题"),
                     ("客户反映莫名开通了手机报", "不知情定制问题")],
    }
    for name, items in rows.items():
        (tmp_path / name).write_text("".join(f"{t}\t{label}\n" for t, label in items), encoding="utf-8")
    cfg = config.load(None, [f"data.dir={tmp_path}", "data.train=train.tsv", "data.test=test.tsv",
                             "data.validation_fraction=0", "preprocess.max_tokens=40"])
    dataset = preprocess.build(cfg, qwen_tokenizer, taxonomy.load(cfg["labels"]))
    # the two long training calls differ (not duplicates of each other), but within 40 tokens both
    # look exactly like the test call: what the model would see leaks, so both leave train
    assert dataset.report["dedup"]["train"]["duplicates_removed"] == 0
    assert dataset.report["dedup"]["leaks_removed"]["train"] == 2
    assert sorted(e.source.rsplit(":", 1)[1] for e in dataset.splits["train"]) == ["3", "4", "5", "6", "7"]
