"""The artifact store: directories published atomically, each described by a manifest.

An artifact is a directory (a checkpoint, a tokenizer, a GGUF file set). It is built in a temporary
sibling directory and published with one rename, so an interrupted run never leaves a half-written
artifact where a later step would use it. `manifest.json` records what it is, where it came from,
and the sha256 and size of every file; `verify` checks them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def describe_files(root: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file under root except the manifest, by relative path."""
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST):
        rel = path.relative_to(root).as_posix()
        files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return files


def read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def verify(root: Path, *, deep: bool = True) -> list[str]:
    """Problems with a published artifact (empty list: intact). deep=False checks sizes only."""
    manifest = read_manifest(root)
    if manifest is None:
        return [f"{root}: no readable {MANIFEST}"]
    problems = []
    for rel, meta in manifest.get("files", {}).items():
        path = root / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif path.stat().st_size != meta["size"]:
            problems.append(f"{rel}: size {path.stat().st_size} != {meta['size']}")
        elif deep and sha256_file(path) != meta["sha256"]:
            problems.append(f"{rel}: sha256 mismatch")
    return problems


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@contextlib.contextmanager
def publish(dest: Path, description: dict[str, Any]) -> Iterator[Path]:
    """Build an artifact in a temporary directory, then write its manifest and rename it to dest.

    Usage::

        with publish(dest, {"kind": "checkpoint", ...}) as tmp:
            (tmp / "config.json").write_text(...)

    On an exception the temporary directory is removed and dest is left as it was.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        yield tmp
        manifest = {**description, "created": utc_now(), "files": describe_files(tmp)}
        write_json(tmp / MANIFEST, manifest)
        for path in tmp.rglob("*"):
            if path.is_file():
                with path.open("rb") as handle:
                    os.fsync(handle.fileno())
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            dest.rename(old)
        tmp.rename(dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def clean_partials(parent: Path) -> list[Path]:
    """Remove leftovers of interrupted builds (never used by anything: they have no final name)."""
    removed = []
    if parent.is_dir():
        for path in parent.glob(".*.partial-*"):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
