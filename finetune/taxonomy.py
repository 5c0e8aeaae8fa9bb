"""The versioned label file, and validation of data labels against it.

    python -m finetune.taxonomy show [--labels FILE]
    python -m finetune.taxonomy check [--labels FILE] [--source cocc] DATA_FILE...

A label file (finetune/labels/complaints-v1.yml) lists classes, each with a slug, a Chinese name,
a definition, examples and, per source corpus, the labels of that corpus it maps. A data label is
accepted as a slug, a Chinese name or a source label; anything else is reported by name with the
file and line it came from. Classes that no example uses are reported by name too.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qwen3ops.errors import UserError

SLUG = re.compile(r"^[a-z][a-z0-9_]*$")
REQUIRED = ("slug", "name_zh", "definition", "examples")


@dataclass(frozen=True)
class LabelClass:
    slug: str
    name_zh: str
    definition: str
    examples: tuple[str, ...]
    sources: dict[str, tuple[str, ...]]


@dataclass
class Taxonomy:
    name: str
    version: int
    path: Path
    classes: list[LabelClass]
    description: str = ""
    _lookup: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)

    @property
    def slugs(self) -> list[str]:
        return [c.slug for c in self.classes]

    @property
    def id(self) -> str:
        return f"{self.name}-v{self.version}"

    def get(self, slug: str) -> LabelClass:
        for c in self.classes:
            if c.slug == slug:
                return c
        raise UserError(f"unknown class {slug!r} in {self.path}; classes: {', '.join(self.slugs)}")

    def sources(self) -> list[str]:
        return sorted({s for c in self.classes for s in c.sources})

    def resolver(self, source: str = "auto") -> dict[str, str]:
        """Accepted label string -> slug, for one source corpus (or every source with 'auto')."""
        if source != "auto" and source not in self.sources():
            raise UserError(f"unknown label source {source!r} for {self.path}; "
                            f"sources: {', '.join(self.sources()) or '(none)'}, or auto")
        table: dict[str, str] = {}
        for c in self.classes:
            table[c.slug] = c.slug
            table[c.name_zh] = c.slug
            for src, labels in c.sources.items():
                if source in ("auto", src):
                    for label in labels:
                        table[label] = c.slug
        return table

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "path": str(self.path),
                "classes": [{"slug": c.slug, "name_zh": c.name_zh, "definition": c.definition} for c in self.classes]}


def load(path: Path | str) -> Taxonomy:
    """Read and check a label file; every problem is reported with the file and the class."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"label file {path} does not exist (shipped: finetune/labels/complaints-v1.yml)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
        raise UserError(f"{path}: expected a mapping with name, version and a list of classes")
    problems = []
    for key in ("name", "version"):
        if key not in data:
            problems.append(f"missing top-level key {key!r}")
    if not isinstance(data.get("version"), int):
        problems.append("version must be an integer (publish a changed taxonomy as a new file with a higher version)")
    classes: list[LabelClass] = []
    seen_slugs: set[str] = set()
    seen_labels: dict[str, str] = {}
    for i, item in enumerate(data["classes"], 1):
        where = f"class #{i}"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected a mapping")
            continue
        where = f"class #{i} ({item.get('slug', '?')})"
        missing = [k for k in REQUIRED if not item.get(k)]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        slug = str(item["slug"])
        if not SLUG.match(slug):
            problems.append(f"{where}: slug must be lower_snake_case")
        if slug in seen_slugs:
            problems.append(f"{where}: duplicate slug")
        seen_slugs.add(slug)
        sources = item.get("sources") or {}
        if not isinstance(sources, dict):
            problems.append(f"{where}: sources must map a corpus name to a list of its labels")
            sources = {}
        for name in [slug, str(item["name_zh"])] + [str(x) for v in sources.values() for x in (v or [])]:
            if name in seen_labels and seen_labels[name] != slug:
                problems.append(f"{where}: label {name!r} already maps to {seen_labels[name]}")
            seen_labels[name] = slug
        classes.append(LabelClass(slug=slug, name_zh=str(item["name_zh"]), definition=str(item["definition"]).strip(),
                                  examples=tuple(str(e) for e in item["examples"]),
                                  sources={str(k): tuple(str(x) for x in (v or [])) for k, v in sources.items()}))
    if len(classes) < 2 and not problems:
        problems.append("a taxonomy needs at least two classes")
    if problems:
        raise UserError(f"{path}: invalid label file:\n  " + "\n  ".join(problems))
    return Taxonomy(name=str(data["name"]), version=int(data["version"]), path=path, classes=classes,
                    description=str(data.get("description", "")).strip())


@dataclass
class LabelCheck:
    """The outcome of validating data labels: counts per class and the classes nobody uses."""

    counts: dict[str, int]
    unused: list[str]
    mapped: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "unused": self.unused, "mapped": self.mapped}


def validate_labels(taxonomy: Taxonomy, labelled: list[tuple[str, str, int]], source: str = "auto") -> LabelCheck:
    """Map (label, file, line) triples to slugs; unknown labels raise one error naming each of them."""
    table = taxonomy.resolver(source)
    unknown: dict[str, list[str]] = {}
    counts: Counter[str] = Counter()
    mapped: dict[str, str] = {}
    for label, file, line in labelled:
        slug = table.get(label.strip())
        if slug is None:
            unknown.setdefault(label, []).append(f"{file}:{line}")
        else:
            counts[slug] += 1
            if label != slug:
                mapped[label] = slug
    if unknown:
        lines = [f"{label!r} ({len(places)}x, first at {places[0]})" for label, places in sorted(unknown.items())]
        raise UserError(f"labels not in {taxonomy.path} ({taxonomy.id}, source {source}): " + "; ".join(lines)
                        + f". Known: {', '.join(sorted(table))}. Add a mapping under the class's `sources` "
                        "in a new version of the label file, or fix the data.")
    unused = [s for s in taxonomy.slugs if counts[s] == 0]
    return LabelCheck(counts={s: counts[s] for s in taxonomy.slugs}, unused=unused, mapped=mapped)


def main(argv: list[str] | None = None) -> int:
    from finetune import readers
    from finetune.config import DEFAULT_LABELS

    parser = argparse.ArgumentParser(prog="python -m finetune.taxonomy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS, help="label file (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("show", help="print the classes")
    check = sub.add_parser("check", help="validate the labels of data files against the label file")
    check.add_argument("--source", default="auto", help="source corpus of the labels (default: %(default)s)")
    check.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        taxonomy = load(args.labels)
        if args.command == "show":
            print(f"{taxonomy.id}: {len(taxonomy.classes)} classes ({args.labels})")
            for c in taxonomy.classes:
                mapped = "; ".join(f"{k}: {', '.join(v)}" for k, v in c.sources.items() if v)
                print(f"  {c.slug:28} {c.name_zh:10} {mapped}")
            return 0
        records = [r for f in args.files for r in readers.read(f)]
        result = validate_labels(taxonomy, [(r.label or "", r.file, r.line) for r in records], args.source)
        for slug, n in result.counts.items():
            print(f"  {slug:28} {n:6}")
        if result.unused:
            print(f"unused classes (no example): {', '.join(result.unused)}")
        print(f"ok: {len(records)} labels valid against {taxonomy.id}")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
