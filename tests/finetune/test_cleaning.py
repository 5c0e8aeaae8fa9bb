"""ASR cleanup: marks and fillers go, negations and intensifiers stay; spoken digits; speaker roles."""

from __future__ import annotations

import pytest

from finetune import cleaning
from finetune.readers import Turn


@pytest.mark.parametrize(("raw", "clean"), [
    ("嗯那个我我我的话费_就是不对", "我的话费，不对"),
    ("呃，这不就是骗人吗", "这不就是骗人吗"),
    ("啊我非常不满意，太差了", "我非常不满意，太差了"),
    ("我根本没有订过[UNK]这个业务", "我根本没有订过这个业务"),
    ("额，我的余额不对，额度也没了，还有额外扣费", "我的余额不对，额度也没了，还有额外扣费"),
    ("就是说我一直都没有信号", "我一直都没有信号"),
    ("你们别再给我打电话了哦", "你们别再给我打电话了"),
])
def test_fillers_removed_meaning_kept(raw: str, clean: str) -> None:
    assert cleaning.clean(raw) == clean


@pytest.mark.parametrize("word", [*cleaning.NEGATIONS, *cleaning.INTENSIFIERS])
def test_no_negation_or_intensifier_is_ever_removed(word: str) -> None:
    text = f"嗯那个{word}满意就是"
    assert word in cleaning.clean(text)


def test_cleaning_is_idempotent() -> None:
    once = cleaning.clean("嗯那个_我我我想问一下[UNK]幺三八幺二三四五六七八，就是那个")
    assert cleaning.clean(once) == once


@pytest.mark.parametrize(("raw", "converted"), [
    ("幺三八幺二三四五六七八", "13812345678"),
    ("二零一五年", "2015年"),
    ("YD幺五幺", "YD151"),
    ("三十五块，一百兆，两个G", "三十五块，一百兆，两个G"),  # amounts with units stay words
    ("五五十块", "五五十块"),
])
def test_spoken_digits(raw: str, converted: str) -> None:
    assert cleaning.convert_spoken_digits(raw) == converted


def test_roles_inferred_from_what_speakers_say() -> None:
    turns = [Turn("s2", "喂"), Turn("s1", "您好，很高兴为您服务"), Turn("s2", "我想问一下我的话费"),
             Turn("s1", "好的请您稍等，我帮您查询")]
    mapping, confidence = cleaning.infer_roles(turns)
    assert mapping == {"s1": "agent", "s2": "customer"}
    assert confidence > 0.5


def test_known_roles_are_kept_and_complete_the_other() -> None:
    mapping, _ = cleaning.infer_roles([Turn("agent", "您好"), Turn("x", "我的话费不对")])
    assert mapping == {"x": "customer"}
