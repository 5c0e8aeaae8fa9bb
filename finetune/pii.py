"""Typed PII detection and masking for Chinese call transcripts and work orders.

    python -m finetune.pii "我叫王小明，电话13812345678，身份证11010519491231002X"
    -> 我叫<NAME>，电话<PHONE>，身份证<ID_CARD>      (and the counts per type)

Placeholders (one token type each, so a model can still learn "the customer gave a number"):
  <PHONE>      mainland mobile numbers (1[3-9] + 9 digits, optional +86) and landlines (0 + area + number)
  <ID_CARD>    18-character resident ID numbers whose ISO 7064 MOD 11-2 check digit and birth date are valid
  <BANK_CARD>  13-19 digit numbers that pass the Luhn check
  <EMAIL>      e-mail addresses
  <ADDRESS>    street or residential-compound addresses (province/city/district + road + number, ...)
  <NAME>       person names introduced as such (我叫/我姓/机主是/王先生 ...)
  <ACCOUNT>    letter-prefixed account ids (broadband accounts such as YD0123456, QQ numbers)
  <NUMBER>     any other run of `min_digits` or more digits (order, account or ID numbers that fail
               their check): masked too, so nothing number-like survives
  <REDACTED>   masks a corpus already applied: COCC's `******`, MobileCS's runs of zeros, `138****5678`
Digit groups split by spaces, dashes, commas or ASR pause marks (`138 1234 5678`) are joined
when the joined number is a phone, ID or card number. Spoken digits (幺三八...) must be converted
first (finetune.cleaning.convert_spoken_digits) for them to be detected.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections import Counter

PLACEHOLDERS = ("PHONE", "ID_CARD", "BANK_CARD", "EMAIL", "ADDRESS", "NAME", "ACCOUNT", "NUMBER", "REDACTED")
PLACEHOLDER_RE = re.compile(r"<(?:" + "|".join(PLACEHOLDERS) + r")>")

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_card_check_digit(first17: str) -> str:
    """The check character of a resident ID number (GB 11643-1999, ISO 7064 MOD 11-2)."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("expected the first 17 digits of an ID number")
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def is_valid_id_card(value: str) -> bool:
    """18 characters, a plausible region and birth date, and the right check character."""
    value = value.strip().upper()
    if len(value) != 18 or not value[:17].isdigit() or not (value[17].isdigit() or value[17] == "X"):
        return False
    if value[0] not in "123456789":
        return False
    try:
        born = dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    if not dt.date(1900, 1, 1) <= born <= dt.date.today():
        return False
    return id_card_check_digit(value[:17]) == value[17]


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check used by bank card numbers."""
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def is_mobile(digits: str) -> bool:
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return len(digits) == 11 and digits[0] == "1" and digits[1] in "3456789"


def is_landline(digits: str) -> bool:
    return digits.startswith("0") and not digits.startswith("00") and 10 <= len(digits) <= 12


def classify_number(digits: str, min_digits: int = 6) -> str | None:
    """The placeholder type of a digit string (X allowed last, for ID numbers), or None to keep it."""
    if len(digits) == 18 and is_valid_id_card(digits):
        return "ID_CARD"
    if not digits.isdigit():
        return "NUMBER" if len(digits) >= min_digits else None
    if is_mobile(digits) or is_landline(digits):
        return "PHONE"
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return "BANK_CARD"
    if len(digits) >= min_digits:
        return "NUMBER"
    return None


# Common surnames (single and compound): a name must start with one, which keeps 我叫/我是 phrases
# such as 我是老用户 unmasked.
_SURNAMES_2 = "欧阳|司马|诸葛|上官|东方|皇甫|慕容|令狐|夏侯|尉迟|公孙|长孙|宇文|司徒"
_SURNAMES_1 = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
               "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武"
               "戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮"
               "柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古"
               "吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫"
               "寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝")
_SURNAME = f"(?:{_SURNAMES_2}|[{_SURNAMES_1}])"
_HAN = r"[\u4e00-\u9fff]"
# One or two given-name characters, never the start of a title (王先生 is a surname and a title).
_GIVEN = rf"(?:(?!先生|女士|小姐|师傅|经理){_HAN}){{1,2}}"
_NAME_CUE = (r"(?:我叫|我的名字叫|我的名字是|名字叫|名字是|姓名是|姓名叫|机主是|机主叫|机主名字是|联系人是"
             r"|联系人叫|本人叫)")
_NAME_FIELD = r"(?:客户名称|客户姓名|机主姓名|用户姓名|姓名|联系人|户名)"
_TITLE_BEFORE = r"(?:^|(?<=[^\u4e00-\u9fff])|(?<=[是叫找给跟和对位好问]))"
_NUM_CN = r"[0-9一二三四五六七八九十百零〇幺两]"
_ADMIN = rf"(?:{_HAN}{{2,7}}?(?:省|自治区|特别行政区|市|自治州|地区|盟|区|县|旗|镇|乡|街道))"
_STREET = rf"(?:{_HAN}{{1,8}}?(?:大道|大街|路|街|巷|弄|胡同|道))"
_COMPOUND = rf"(?:{_HAN}{{2,8}}?(?:小区|花园|公寓|大厦|家园|新村|苑|广场|村))"
_UNIT = rf"(?:{_NUM_CN}+(?:号院|号楼|号|栋|幢|座|单元|楼|层|室|户|组))"
_ADDRESS_RE = re.compile(
    rf"{_ADMIN}{{0,4}}(?:{_STREET}{_NUM_CN}+(?:号院|号)(?:{_COMPOUND})?{_UNIT}*|{_COMPOUND}{_UNIT}+)(?:\d{{1,5}}(?![0-9]))?"
)
# Words before an address that the leftmost match may have swallowed (我家住在, 地址是, 寄到 ...).
_ADDRESS_LEAD = re.compile(rf"^{_HAN}{{0,4}}(?:住在|住|在|是|到|址|寄|送)")

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("EMAIL", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")),
    ("ACCOUNT", re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{1,4}\d{3,}(?![0-9])")),
    ("REDACTED", re.compile(r"\d*[*＊]{2,}\d*|(?<!\d)0{5,}(?!\d)")),
    ("NAME", re.compile(rf"{_NAME_CUE}(?P<pii>{_SURNAME}{_GIVEN})")),
    ("NAME", re.compile(rf"{_NAME_FIELD}[：:]\s*(?P<pii>{_SURNAME}{_GIVEN})")),
    ("NAME", re.compile(rf"(?:我姓|免贵姓)(?P<pii>{_SURNAME})")),
    # A name followed by a staff or account number in brackets: 张艳娣(12345678).
    ("NAME", re.compile(rf"(?P<pii>{_SURNAME}{_GIVEN})(?=[（(]\d{{5,}})")),
    ("NAME", re.compile(rf"{_TITLE_BEFORE}(?P<pii>{_SURNAME})(?=先生|女士|小姐|师傅|经理)")),
]
# Digit groups, possibly split by separators; ID numbers may end in X.
_DIGIT_GROUPS = re.compile(r"(?<![0-9A-Za-z])(?:\+?86[ -]?)?\d+(?:[ \-，,_、]\d+)*[Xx]?(?![0-9])")
_SEPARATORS = re.compile(r"[ \-，,_、+]")


def _mask_numbers(text: str, counts: Counter[str], min_digits: int) -> str:
    def replace(match: re.Match[str]) -> str:
        chunk = match.group(0)
        joined = _SEPARATORS.sub("", chunk)
        kind = classify_number(joined.upper(), min_digits) if len(joined) > 2 else None
        if kind in ("PHONE", "ID_CARD", "BANK_CARD") or not _SEPARATORS.search(chunk):
            if kind is None:
                return chunk
            counts[kind] += 1
            return f"<{kind}>"
        # The groups are not one number together: judge each group alone, keep the separators.
        parts = re.split(r"([ \-，,_、])", chunk)
        out = []
        for part in parts:
            digits = part.upper().lstrip("+")
            group_kind = classify_number(digits, min_digits) if digits[:1].isdigit() else None
            if group_kind:
                counts[group_kind] += 1
                out.append(f"<{group_kind}>")
            else:
                out.append(part)
        return "".join(out)

    return _DIGIT_GROUPS.sub(replace, text)


def _mask_addresses(text: str, counts: Counter[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        span = match.group(0)
        lead = _ADDRESS_LEAD.match(span)
        keep = lead.group(0) if lead and len(span) - lead.end() >= 4 else ""
        counts["ADDRESS"] += 1
        return keep + "<ADDRESS>"

    return _ADDRESS_RE.sub(replace, text)


def mask(text: str, min_digits: int = 6, counts: Counter[str] | None = None) -> tuple[str, Counter[str]]:
    """The text with every detected PII span replaced by its typed placeholder, and counts per type."""
    counts = Counter() if counts is None else counts
    # No pattern matches a placeholder, so masking twice changes nothing.
    for kind, pattern in _PATTERNS:
        def replace(match: re.Match[str], kind: str = kind) -> str:
            counts[kind] += 1
            if "pii" not in match.re.groupindex:
                return f"<{kind}>"
            start, end = match.span("pii")
            whole = match.group(0)
            return whole[: start - match.start()] + f"<{kind}>" + whole[end - match.start():]

        text = pattern.sub(replace, text)
    text = _mask_addresses(text, counts)
    text = _mask_numbers(text, counts, min_digits)
    return text, counts


def leftovers(text: str, min_digits: int = 6) -> list[str]:
    """PII-like spans a masked text still contains (for tests and the data report): should be empty."""
    found = [m.group(0) for m in re.finditer(rf"\d{{{min_digits},}}", text)]
    found += [m.group(0) for m in _PATTERNS[0][1].finditer(text)]
    found += [m.group(0) for m in re.finditer(r"[零〇一二三四五六七八九幺]{7,}", text)]
    return found


def main(argv: list[str] | None = None) -> int:
    from finetune.cleaning import convert_spoken_digits

    parser = argparse.ArgumentParser(prog="python -m finetune.pii", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("texts", nargs="+")
    parser.add_argument("--min-digits", type=int, default=6)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    for text in args.texts:
        masked, counts = mask(convert_spoken_digits(text), args.min_digits)
        if args.json:
            print(json.dumps({"text": masked, "counts": dict(counts)}, ensure_ascii=False))
        else:
            print(masked, dict(counts) if counts else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
