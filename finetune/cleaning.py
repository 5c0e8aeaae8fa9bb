"""Text cleaning for ASR transcripts: marks, fillers, stutters, spoken digits, speaker roles.

    python -m finetune.cleaning "嗯那个我我我的话费_就是不对，[UNK]幺三八幺二三四五六七八"

What it does, in order (each step has a switch in the config's `preprocess` section):
  1. convert_spoken_digits: runs of 3+ spoken digits (幺三八, 二零一五) become Arabic digits, so
     that PII detection sees phone and ID numbers that were read out. Numbers with units (三十五,
     一百兆) are left alone.
  2. remove_asr_marks: [UNK], [NOISE], <unk>, (笑) ... removed; `_` pause marks become commas.
  3. remove_fillers: interjections (嗯 呃 啊 哦 唉 ...) anywhere; discourse fillers (那个, 就是,
     就是说, 这个) where they are fillers: at the start of a clause, before a pause, or repeated;
     stutters (我我我 -> 我). Negations and intensifiers (不 没 别 未 非 很 太 非常 特别 根本 一直 老是
     ...) are never removed, and a filler is kept when removing it would join a negation to the
     next word differently (不就是 stays).
Speaker roles: `infer_roles` names the agent among speaker ids by what each says (greetings,
您-forms, "还有什么可以帮您"); the other speaker is the customer.
"""

from __future__ import annotations

import re
import sys
from collections import Counter

from finetune.readers import AGENT, CUSTOMER, Turn

_SPOKEN = {"零": "0", "〇": "0", "一": "1", "二": "2", "三": "3", "四": "4", "五": "5", "六": "6", "七": "7",
           "八": "8", "九": "9", "幺": "1"}
_SPOKEN_RUN = re.compile(r"[零〇一二三四五六七八九幺0-9]{3,}")

_ASR_MARKS = re.compile(
    r"\[(?:UNK|NOISE|LAUGH(?:TER)?|SIL|MUSIC|BREATH|COUGH|SPEAKER ?\d+|\*)\]"
    r"|<(?:unk|noise|sil|laugh|music)>"
    r"|[（(](?:笑|咳嗽|噪音|听不清|静音|音乐)[)）]",
    re.IGNORECASE,
)
_PAUSE = re.compile(r"_+")

NEGATIONS = ("不", "没", "别", "未", "非", "无", "莫", "勿")
INTENSIFIERS = ("很", "太", "非常", "特别", "根本", "一直", "老是", "总是", "极", "超", "真", "实在", "完全", "绝对",
                "再也", "从来", "一点都", "一点也", "简直")
# Interjections: fillers wherever they stand (none of them is part of a common word).
_INTERJECTIONS = "嗯呃哦噢喔唉哎诶欸啊"
# 额 is a filler alone, but part of 余额 金额 额度 额外: removed only where it stands alone.
_BOUNDARY = r"[，。？！、；：,.?!;:\s]"
# Discourse fillers: collapsed when repeated, removed at the start of a clause or before a pause.
_REPEATED = ("那个", "这个", "就是", "然后")
_AT_CLAUSE_START = ("就是说", "就是", "那个", "然后呢")
_BEFORE_PAUSE = ("就是说", "就是", "那个")
_CLAUSE_START = rf"(?:^|(?<={_BOUNDARY}))"


def convert_spoken_digits(text: str) -> str:
    """幺三八幺二三四五六七八 -> 13812345678; runs shorter than 3 or with units are kept."""
    def replace(match: re.Match[str]) -> str:
        run = match.group(0)
        if not any(ch in _SPOKEN for ch in run):
            return run
        return "".join(_SPOKEN.get(ch, ch) for ch in run)

    return _SPOKEN_RUN.sub(replace, text)


def remove_asr_marks(text: str) -> str:
    text = _ASR_MARKS.sub("", text)
    return _PAUSE.sub("，", text)


def _squeeze(text: str) -> str:
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s*([，。？！、；：])\s*", r"\1", text)
    text = re.sub(r"([，、；：])(?:[，、；：])+", r"\1", text)
    text = re.sub(r"[，、；：]([。？！])", r"\1", text)
    text = re.sub(r"([。？！])[，、；：]", r"\1", text)
    return text.strip(" ，、；：")


def remove_fillers(text: str) -> str:
    """Fillers out, meaning in: see the module doc for what counts as a filler."""
    before = None
    while before != text:
        before = text
        text = re.sub(rf"[{_INTERJECTIONS}]+|{_CLAUSE_START}[呀哟]", "", text)
        text = re.sub(rf"(?:{_CLAUSE_START}额(?![度外])|(?<![余金差限])额(?={_BOUNDARY}|$))", "", text)
        for word in _REPEATED:
            text = re.sub(f"(?:{word}){{2,}}", word, text)
        for word in _AT_CLAUSE_START:
            text = re.sub(rf"{_CLAUSE_START}{word}", "", text)
        for word in _BEFORE_PAUSE:
            text = re.sub(rf"(?<![不没别未非]){word}(?={_BOUNDARY}|$)", "", text)
        # Stutters: three or more of the same character (我我我, 查查查询); digits and letters excluded.
        text = re.sub(r"([\u4e00-\u9fff])\1{2,}", r"\1", text)
        text = _squeeze(text)
    return text


def clean(text: str, *, spoken_digits: bool = True, fillers: bool = True) -> str:
    """Steps 1-3 of the module doc on one turn (PII masking, finetune.pii, comes after)."""
    if spoken_digits:
        text = convert_spoken_digits(text)
    text = remove_asr_marks(text)
    if fillers:
        text = remove_fillers(text)
    return _squeeze(text)


_AGENT_CUES = ("很高兴为您服务", "为您服务", "请问", "您好", "请稍等", "请您稍等", "为您", "帮您", "给您", "您的",
               "先生",
               "女士", "还有什么", "还有其他", "感谢您", "耐心等待", "不客气", "不用客气", "稍后", "查询到", "帮你查",
               "我这边", "这边", "请讲")
_CUSTOMER_CUES = ("我想", "我的", "我这", "帮我", "给我", "你们", "我要", "怎么回事", "为什么", "我手机", "我家",
                  "谢谢",
                  "我问", "我刚")


def infer_roles(turns: list[Turn]) -> tuple[dict[str, str], float]:
    """Map speaker ids to agent/customer from what they say. Returns (mapping, confidence 0..1).

    Turns whose role is already agent/customer keep it. With one unresolved speaker and a known
    agent, it is the customer (and vice versa). With no cue at all, the first speaker is the agent
    (call centres answer first).
    """
    speakers = [t.role for t in turns if t.role not in (AGENT, CUSTOMER, "text")]
    if not speakers:
        return {}, 1.0
    order = list(dict.fromkeys(speakers))
    known = {t.role for t in turns if t.role in (AGENT, CUSTOMER)}
    if len(order) == 1 and len(known) == 1:
        return {order[0]: CUSTOMER if AGENT in known else AGENT}, 1.0
    score: Counter[str] = Counter()
    words: Counter[str] = Counter()
    for t in turns:
        if t.role in order:
            score[t.role] += sum(t.text.count(c) for c in _AGENT_CUES) - sum(t.text.count(c) for c in _CUSTOMER_CUES)
            words[t.role] += 1
    ranked = sorted(order, key=lambda s: (-(score[s] / max(words[s], 1)), order.index(s)))
    agent = ranked[0]
    mapping = {s: (AGENT if s == agent else CUSTOMER) for s in order}
    if len(ranked) == 1:
        return mapping, 0.5
    gap = score[ranked[0]] / max(words[ranked[0]], 1) - score[ranked[1]] / max(words[ranked[1]], 1)
    return mapping, min(1.0, 0.5 + gap / 4)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from finetune import pii

    parser = argparse.ArgumentParser(prog="python -m finetune.cleaning", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("texts", nargs="+")
    args = parser.parse_args(argv)
    for text in args.texts:
        masked, counts = pii.mask(clean(text))
        print(masked, dict(counts) if counts else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
