"""PII detectors and masking: check digits, Luhn, typed placeholders, nothing number-like left."""

from __future__ import annotations

import random

import pytest

from finetune import cleaning, pii, synthetic


@pytest.mark.parametrize("number", ["11010519491231002X", "110105194912310029"[:17] + "X"])
def test_published_example_id_number_is_valid(number: str) -> None:
    assert pii.is_valid_id_card(number)
    assert pii.is_valid_id_card(number.lower())


def test_check_digit_is_computed_per_gb11643() -> None:
    assert pii.id_card_check_digit("11010519491231002") == "X"
    assert pii.id_card_check_digit("44030519900101123") == str(pii.id_card_check_digit("44030519900101123"))
    rng = random.Random(1)
    for _ in range(50):
        number = synthetic.id_card(rng)
        assert pii.is_valid_id_card(number)


@pytest.mark.parametrize("number", [
    "110105194912310021",   # wrong check digit
    "11010519491231002",    # 17 characters
    "110105194913310028",   # month 13
    "010105194912310028",   # region cannot start with 0
    "11010521001231002X",   # born in the future
])
def test_invalid_id_numbers_are_rejected(number: str) -> None:
    assert not pii.is_valid_id_card(number)


def test_every_wrong_check_digit_is_rejected() -> None:
    first = "11010519491231002"
    wrong = [d for d in "0123456789X" if d != pii.id_card_check_digit(first)]
    assert all(not pii.is_valid_id_card(first + d) for d in wrong)


@pytest.mark.parametrize(("number", "valid"), [
    ("4111111111111111", True), ("79927398713", True), ("6222021234567890128", True),
    ("4111111111111112", False), ("79927398710", False), ("6222021234567890127", False),
])
def test_luhn(number: str, valid: bool) -> None:
    assert pii.luhn_valid(number) is valid


def test_generated_bank_cards_pass_luhn_and_one_changed_digit_fails() -> None:
    rng = random.Random(2)
    for _ in range(50):
        card = synthetic.bank_card(rng)
        assert pii.luhn_valid(card)
        broken = card[:-1] + str((int(card[-1]) + 1) % 10)
        assert not pii.luhn_valid(broken)


@pytest.mark.parametrize(("text", "expected"), [
    ("我的电话是13812345678", "我的电话是<PHONE>"),
    ("号码+86 138 1234 5678谢谢", "号码<PHONE>谢谢"),
    ("座机0755-12345678", "座机<PHONE>"),
    ("身份证11010519491231002X", "身份证<ID_CARD>"),
    ("身份证110105194912310021", "身份证<NUMBER>"),          # bad check digit: still masked, not typed as ID
    ("卡号6222 0212 3456 7890 128", "卡号<BANK_CARD>"),
    ("卡号6222021234567890127", "卡号<NUMBER>"),            # fails Luhn
    ("邮箱zhang.san@example.com。", "邮箱<EMAIL>。"),
    ("宽带账号YD0123456", "宽带账号<ACCOUNT>"),
    ("客户问题号码:******", "客户问题号码:<REDACTED>"),
    ("号码138****5678", "号码<REDACTED>"),
    ("我叫王小明，", "我叫<NAME>，"),
    ("您好，张先生", "您好，<NAME>先生"),
    ("联系人：王先生", "联系人：<NAME>先生"),
    ("我家住在北京市朝阳区建国路88号院3号楼2单元501室", "我家住在<ADDRESS>"),
])
def test_masking_is_typed(text: str, expected: str) -> None:
    assert pii.mask(text)[0] == expected


@pytest.mark.parametrize("text", [
    "本月话费58元，流量2048兆，2023年12月", "我是老用户了", "谢谢先生", "请拨打10086", "余额不足", "4G信号差",
])
def test_ordinary_numbers_and_words_are_kept(text: str) -> None:
    assert pii.mask(text)[0] == text


def test_spoken_numbers_are_caught_after_conversion() -> None:
    text = cleaning.clean("我电话是幺三八_幺二三四_五六七八")
    assert pii.mask(text)[0] == "我电话是<PHONE>"


def test_masking_is_idempotent_and_counts_types() -> None:
    text = "我叫李雷，电话13912345678，卡号4111111111111111，身份证11010519491231002X"
    once, counts = pii.mask(text)
    assert pii.mask(once)[0] == once
    assert counts == {"NAME": 1, "PHONE": 1, "BANK_CARD": 1, "ID_CARD": 1}
    assert pii.leftovers(once) == []
