"""Input formats, and errors that name the file, the line and the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune import readers
from qwen3ops.errors import UserError


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_transcripts_and_texts(tmp_path: Path) -> None:
    lines = [
        {"id": "c1", "turns": [{"role": "客服", "text": "您好"}, {"speaker": "用户", "text": "话费不对"}],
         "label": "billing_dispute"},
        {"text": "客户反映信号差", "label": "网络问题"},
        {"turns": [{"role": "spk1", "text": "你好"}]},
    ]
    path = write(tmp_path / "d.jsonl", "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n\n")
    records = readers.read(path)
    assert [r.kind for r in records] == ["transcript", "text", "transcript"]
    assert [t.role for t in records[0].turns] == ["agent", "customer"]
    assert records[1].label == "网络问题" and records[2].label is None
    assert records[0].where == f"{path}:1"


def test_tsv_and_csv(tmp_path: Path) -> None:
    tsv = readers.read(write(tmp_path / "d.tsv", "text\tlabel\n客户反映A\t费用问题\n客户反映B\t网络问题\n"))
    assert [(r.turns[0].text, r.label, r.line) for r in tsv] == [("客户反映A", "费用问题", 2),
                                                                ("客户反映B", "网络问题", 3)]
    csv_records = readers.read(write(tmp_path / "d.csv", 'text,label\n"逗号,在里面",费用问题\n'))
    assert csv_records[0].turns[0].text == "逗号,在里面"


@pytest.mark.parametrize(("name", "content", "line", "problem"), [
    ("bad.jsonl", '{"text": "好", "label": "x"}\n{"text": "坏", \n', 2, "not valid JSON"),
    ("bad.jsonl", '{"label": "x"}\n', 1, "needs 'turns'"),
    ("bad.jsonl", '{"turns": [{"role": "agent"}], "label": "x"}\n', 1, "turn 1: missing 'text'"),
    ("bad.jsonl", '{"turns": [], "label": "x"}\n', 1, "non-empty list"),
    ("bad.jsonl", '{"text": "好", "label": 3}\n', 1, "'label' must be a string"),
    ("bad.jsonl", '[1, 2]\n', 1, "expected a JSON object"),
    ("bad.tsv", "好\t费用问题\n只有一列\n", 2, "expected 2 TSV columns"),
    ("bad.tsv", "好\t费用问题\t多一列\n", 1, "a tab inside the text"),
    ("bad.tsv", "\t费用问题\n", 1, "empty text"),
    ("bad.tsv", "好\t \n", 1, "empty label"),
    ("bad.csv", "a,b,c\n", 1, "expected 2 CSV columns"),
    ("bad.json", '[{"content": [{"[SPEAKER 1]": 5}]}]', 1, "is not a string"),
    ("bad.json", '[{"text": "a"},\n {"text": ""}]', 2, "non-empty string"),
])
def test_malformed_input_names_file_line_and_problem(tmp_path: Path, name: str, content: str, line: int,
                                                     problem: str) -> None:
    path = write(tmp_path / name, content)
    with pytest.raises(UserError) as info:
        readers.read(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert problem in message


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "gbk.tsv", "好\t费用问题\n".encode() + "坏\t网络问题\n".encode("gbk"))
    with pytest.raises(UserError, match=r"gbk.tsv:2: not UTF-8"):
        readers.read(path)


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown format '\.txt'"):
        readers.read(write(tmp_path / "a.txt", "x"))
    with pytest.raises(UserError, match="does not exist"):
        readers.read(tmp_path / "missing.tsv")


def test_mobilecs_format(mobilecs: Path) -> None:
    records = readers.read(mobilecs)
    assert len(records) == 10
    assert all(r.kind == "transcript" and r.label is None for r in records)
    assert {t.role for r in records for t in r.turns} == {"speaker1", "speaker2"}
    assert records[1].line > records[0].line > 1  # each dialogue's line in the file, for messages
