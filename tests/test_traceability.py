"""docs/traceability.md stays true: one row per requirement ID of the product's list, in its order, and every
test, path and make target it cites exists. Static text checks only (nothing is imported or run): well under a
second."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The requirement list lives beside the clone: <dir>/main is the repository, <dir>/shared holds the list.
REQUIREMENTS = Path(__file__).resolve().parents[2] / "shared" / "REQUIREMENTS.md"
TABLE = ROOT / "docs" / "traceability.md"
MAKEFILE = ROOT / "Makefile"

ID = r"[A-Z]{1,2}\d{1,2}"
COLUMNS = ["ID", "requirement", "verified by", "implemented in", "status"]
PATH_PREFIXES = ("roles/", "playbooks/", "molecule/", "tests/", "benchmarks/", "finetune/", "qwen3ops/", "charts/",
                 "docs/", "scripts/", "docker/", "inventories/")
NODE_ID = re.compile(r"(tests/[\w/.-]+\.py)::(\w+)")
MAKE = re.compile(r"(?:^|\s)make\s+([A-Za-z][\w-]*)")
MAX_REQUIREMENT_WORDS = 12


def requirement_ids() -> list[str]:
    """The IDs of the product's list, in its order (the first cell of each table row)."""
    if not REQUIREMENTS.is_file():
        pytest.skip(f"{REQUIREMENTS} is missing: the shared folder must sit beside the clone (<dir>/main, "
                    "<dir>/shared)")
    return re.findall(rf"^\|\s*({ID})\s*\|", REQUIREMENTS.read_text(encoding="utf-8"), flags=re.MULTILINE)


def split_row(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def rows() -> list[list[str]]:
    """The table's data rows, split into cells."""
    lines = [line for line in TABLE.read_text(encoding="utf-8").splitlines() if line.startswith("|")]
    assert lines, f"{TABLE} has no table"
    assert split_row(lines[0]) == COLUMNS, f"the table's columns must be {COLUMNS}"
    return [split_row(line) for line in lines[2:]]


def code_spans() -> list[str]:
    """Every `...` span of the file (header and table)."""
    return re.findall(r"`([^`\n]+)`", TABLE.read_text(encoding="utf-8"))


def test_every_requirement_has_exactly_one_row_in_the_lists_order() -> None:
    ids = requirement_ids()
    assert ids, f"no requirement IDs found in {REQUIREMENTS}"
    table = [row[0] for row in rows()]
    missing = [i for i in ids if table.count(i) == 0]
    repeated = sorted({i for i in table if table.count(i) > 1})
    unknown = [i for i in table if i not in ids]
    assert (missing, repeated, unknown) == ([], [], []), f"missing {missing}, repeated {repeated}, unknown {unknown}"
    assert table == ids, "the rows must follow the order of the requirement list"


def test_rows_are_complete_and_say_their_status() -> None:
    for row in rows():
        assert len(row) == len(COLUMNS), f"{row[0]}: {len(row)} cells, expected {len(COLUMNS)}"
        ident, requirement, verified_by, implemented_in, status = row
        assert len(requirement.split()) <= MAX_REQUIREMENT_WORDS, f"{ident}: requirement longer than 12 words"
        assert implemented_in, f"{ident}: no implementation cited"
        assert status == "verified" or re.match(r"(partly|not verified): \S", status), \
            f"{ident}: status must be 'verified', 'partly: ...' or 'not verified: ...', not {status!r}"
        if not status.startswith("not verified"):
            assert "`" in verified_by, f"{ident}: {status} but no command is cited"


def test_cited_pytest_node_ids_exist() -> None:
    cited = NODE_ID.findall(TABLE.read_text(encoding="utf-8"))
    assert cited, "no pytest node id is cited"
    wrong = []
    for path, name in sorted(set(cited)):
        source = ROOT / path
        if not source.is_file():
            wrong.append(f"{path}: no such file")
        elif not re.search(rf"^\s*(?:async\s+)?def {name}\(", source.read_text(encoding="utf-8"), flags=re.MULTILINE):
            wrong.append(f"{path}: defines no {name}")
    assert wrong == [], f"cited pytest node ids that do not exist: {wrong}"


def test_cited_paths_exist() -> None:
    wrong = []
    for span in code_spans():
        for word in span.split():
            token = word.strip(".,;:()'\"")
            # Node ids are checked above; <name> marks a placeholder, not a path.
            if "::" in token or "<" in token or "/" not in token or not token.startswith(PATH_PREFIXES):
                continue
            path = token.split("#")[0]
            found = any(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()
            if not found:
                wrong.append(token)
    assert wrong == [], f"cited paths that do not exist: {wrong}"


def test_cited_make_targets_exist() -> None:
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", MAKEFILE.read_text(encoding="utf-8"), flags=re.MULTILINE))
    cited = {target for span in code_spans() for target in MAKE.findall(span)}
    assert cited, "no make target is cited"
    missing = sorted(cited - targets)
    assert missing == [], f"make targets not in the Makefile: {missing}"
