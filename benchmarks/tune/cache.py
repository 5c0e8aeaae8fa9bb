"""Measurements on disk, keyed by everything that could change them.

A key is a JSON object (host fingerprint, engine build, model artifact sha256, settings, workload
hash, load level, chunk, measurement version, ...); its sha256 names the file
`<root>/<sha[:2]>/<sha>.json`, which holds the key itself beside the measurement, so a cache
directory can be read and audited without this code. Entries are written atomically (temporary
file, then rename): an interrupted run never leaves half an entry.

    python -m benchmarks.tune.cache [--root DIR]     # count and size of the cached measurements
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from qwen3ops.paths import cache_dir


def default_root() -> Path:
    return cache_dir() / "tune" / "measurements"


def key_hash(key: dict[str, Any]) -> str:
    canonical = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class MeasurementCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or default_root()).expanduser()

    def path(self, key: dict[str, Any]) -> Path:
        digest = key_hash(key)
        return self.root / digest[:2] / f"{digest}.json"

    def get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        try:
            entry = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return entry.get("value") if entry.get("key") == json.loads(json.dumps(key, default=str)) else None

    def put(self, key: dict[str, Any], value: dict[str, Any]) -> Path:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"key": key, "value": value}, handle, default=str)
        os.replace(tmp, path)
        return path

    def stats(self) -> tuple[int, int]:
        files = list(self.root.glob("*/*.json")) if self.root.is_dir() else []
        return len(files), sum(f.stat().st_size for f in files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tune.cache", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=None, help=f"cache directory (default: {default_root()})")
    args = parser.parse_args(argv)
    cache = MeasurementCache(args.root)
    count, size = cache.stats()
    print(f"{cache.root}: {count} measurements, {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
