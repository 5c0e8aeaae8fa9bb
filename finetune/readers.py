"""Read training data: JSONL transcripts or texts, MobileCS JSON, TSV/CSV `text,label`.

    python -m finetune.readers FILE...        # parse, print a summary, or the first problem

Formats (chosen by extension):
  .jsonl  one JSON object a line, either a transcript
            {"id": "c1", "turns": [{"role": "customer", "text": "..."}, ...], "label": "billing_dispute"}
          or a text {"id": "t1", "text": "...", "label": "..."}. `role` may be agent/customer (also
          客服/坐席 and 客户/用户) or any speaker id (`speaker` is accepted as its name): roles are then
          inferred from what each speaker says. `label` is optional (unlabelled data for prediction).
  .json   a list of such objects, or the MobileCS format (`content` of `[SPEAKER n]` turn pairs).
  .tsv    `text<TAB>label` a line, no quoting; an optional header line `text<TAB>label`.
  .csv    `text,label` with standard CSV quoting; an optional header line.
Malformed input raises one error naming the file, the line and the problem.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwen3ops.errors import UserError

AGENT, CUSTOMER = "agent", "customer"
ROLE_ALIASES = {
    "agent": AGENT, "客服": AGENT, "坐席": AGENT, "话务员": AGENT, "staff": AGENT, "operator": AGENT,
    "customer": CUSTOMER, "客户": CUSTOMER, "用户": CUSTOMER, "user": CUSTOMER, "caller": CUSTOMER,
}
FORMATS = (".jsonl", ".json", ".tsv", ".csv")


@dataclass
class Turn:
    role: str  # agent, customer, a speaker id still to be resolved, or "text" for non-dialogue text
    text: str


@dataclass
class Record:
    id: str
    turns: list[Turn]
    label: str | None
    file: str
    line: int
    kind: str = "transcript"  # transcript or text
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def _fail(path: Path, line: int | str, problem: str) -> UserError:
    return UserError(f"{path}:{line}: {problem}")


def normalize_role(value: str) -> str:
    return ROLE_ALIASES.get(value.strip().lower(), value.strip())


def _record_from_object(obj: Any, path: Path, line: int, index: int) -> Record:
    if not isinstance(obj, dict):
        raise _fail(path, line, f"expected a JSON object, found {type(obj).__name__}")
    rid = str(obj.get("id", f"{path.stem}-{index}"))
    label = obj.get("label")
    if label is not None and not isinstance(label, str):
        raise _fail(path, line, f"'label' must be a string, found {json.dumps(label, ensure_ascii=False)}")
    if label is not None and not label.strip():
        raise _fail(path, line, "'label' is empty (omit the key for unlabelled data)")
    if "content" in obj and "turns" not in obj:
        return _mobilecs_record(obj, path, line, rid, label)
    if "turns" in obj:
        turns_raw = obj["turns"]
        if not isinstance(turns_raw, list) or not turns_raw:
            raise _fail(path, line, "'turns' must be a non-empty list of {\"role\", \"text\"} objects")
        turns = []
        for j, t in enumerate(turns_raw, 1):
            if not isinstance(t, dict):
                raise _fail(path, line, f"turn {j}: expected an object with role and text")
            role = t.get("role", t.get("speaker"))
            text = t.get("text")
            if not isinstance(role, str) or not role.strip():
                raise _fail(path, line, f"turn {j}: missing 'role' (agent/customer or a speaker id)")
            if not isinstance(text, str):
                raise _fail(path, line, f"turn {j}: missing 'text' (a string)")
            turns.append(Turn(normalize_role(role), text))
        return Record(rid, turns, label, str(path), line, "transcript")
    if "text" in obj:
        if not isinstance(obj["text"], str) or not obj["text"].strip():
            raise _fail(path, line, "'text' must be a non-empty string")
        return Record(rid, [Turn("text", obj["text"])], label, str(path), line, "text")
    raise _fail(path, line, f"an object needs 'turns' (a transcript) or 'text'; found keys {sorted(obj)}")


def _mobilecs_record(obj: dict[str, Any], path: Path, line: int, rid: str, label: str | None) -> Record:
    """MobileCS (SereTOD): content = [{"[SPEAKER 1]": text, "[SPEAKER 2]": text, intents...}, ...]."""
    content = obj["content"]
    if not isinstance(content, list) or not content:
        raise _fail(path, line, f"dialogue {rid}: 'content' must be a non-empty list of turn pairs")
    turns = []
    for j, pair in enumerate(content, 1):
        if not isinstance(pair, dict):
            raise _fail(path, line, f"dialogue {rid}, pair {j}: expected an object of '[SPEAKER n]' keys")
        speakers = sorted(k for k in pair if k.startswith("[SPEAKER"))
        if not speakers:
            raise _fail(path, line, f"dialogue {rid}, pair {j}: no '[SPEAKER n]' key")
        for key in speakers:
            if not isinstance(pair[key], str):
                raise _fail(path, line, f"dialogue {rid}, pair {j}: {key} is not a string")
            turns.append(Turn(key.strip("[]").lower().replace(" ", ""), pair[key]))
    return Record(rid, turns, label, str(path), line, "transcript", meta={"format": "mobilecs"})


def _read_jsonl(path: Path, text: str) -> list[Record]:
    records = []
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise _fail(path, n, f"not valid JSON ({exc.msg} at column {exc.colno}); "
                                 "each line must be one complete JSON object") from exc
        records.append(_record_from_object(obj, path, n, len(records) + 1))
    return records


def _line_starts(text: str) -> list[int]:
    starts = [0]
    starts.extend(i + 1 for i, ch in enumerate(text) if ch == "\n")
    return starts


def _read_json(path: Path, text: str) -> list[Record]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, exc.lineno, f"not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise _fail(path, 1, "expected a list of transcript objects")
    # Line of each top-level item, for messages: where its '{' is.
    decoder, starts, positions = json.JSONDecoder(), _line_starts(text), []
    pos = text.index("[") + 1 if text.lstrip().startswith("[") else 0
    for _ in data:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        positions.append(pos)
        try:
            _, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            break
        pos = end
    import bisect

    records = []
    for i, obj in enumerate(data):
        line = bisect.bisect_right(starts, positions[i]) if i < len(positions) else 1
        records.append(_record_from_object(obj, path, line, i + 1))
    return records


def _read_delimited(path: Path, text: str, delimiter: str) -> list[Record]:
    if delimiter == "\t":
        rows = ((n, raw.split("\t")) for n, raw in enumerate(text.splitlines(), 1))
    else:
        reader = csv.reader(text.splitlines(), delimiter=delimiter)
        rows = ((reader.line_num, row) for row in reader)
    records = []
    name = "TSV" if delimiter == "\t" else "CSV"
    for n, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise _fail(path, n, f"expected 2 {name} columns (text, label), found {len(row)}"
                                 + (" (a tab inside the text?)" if delimiter == "\t" and len(row) > 2 else ""))
        cell_text, label = row[0].strip(), row[1].strip()
        if n == 1 and cell_text.lower() == "text" and label.lower() == "label":
            continue
        if not cell_text:
            raise _fail(path, n, "empty text")
        if not label:
            raise _fail(path, n, "empty label")
        records.append(Record(f"{path.stem}-{n}", [Turn("text", cell_text)], label, str(path), n, "text"))
    return records


def read(path: Path | str) -> list[Record]:
    """Every record of one file; raises UserError naming file, line and problem on malformed input."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file {path} does not exist")
    if path.suffix.lower() not in FORMATS:
        raise UserError(f"{path}: unknown format {path.suffix!r}; use one of {', '.join(FORMATS)}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _fail(path, line, f"not UTF-8 (byte {raw[exc.start]:#04x}); convert the file to UTF-8") from exc
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        records = _read_jsonl(path, text)
    elif suffix == ".json":
        records = _read_json(path, text)
    else:
        records = _read_delimited(path, text, "\t" if suffix == ".tsv" else ",")
    if not records:
        raise UserError(f"{path}: no records")
    return records


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m finetune.readers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        for path in args.files:
            records = read(path)
            kinds = Counter(r.kind for r in records)
            labels = Counter(r.label for r in records if r.label)
            print(f"{path}: {len(records)} records ({dict(kinds)}), {len(labels)} distinct labels")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
