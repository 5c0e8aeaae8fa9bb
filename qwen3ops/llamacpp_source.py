"""The pinned llama.cpp source, as vendored in the llama-cpp-python sdist on PyPI.

The sdist is fetched and checked by `scripts/fetch-llamacpp-source.sh` (pins in
`scripts/lib/versions.sh`); this module extracts what the Python side needs from it (the Qwen2/Qwen3
vocabulary with its test vectors, the Qwen3 chat template, the GGUF converter) once, into
`<cache>/llamacpp-src/<version>/`, atomically.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from qwen3ops.errors import UserError
from qwen3ops.paths import PROJECT_ROOT, cache_dir

VERSIONS_FILE = PROJECT_ROOT / "scripts" / "lib" / "versions.sh"
FETCH_SCRIPT = PROJECT_ROOT / "scripts" / "fetch-llamacpp-source.sh"


def pinned_version() -> str:
    match = re.search(r"^LLAMA_CPP_PYTHON_VERSION=(\S+)$", VERSIONS_FILE.read_text(), re.MULTILINE)
    if not match:
        raise RuntimeError(f"LLAMA_CPP_PYTHON_VERSION not found in {VERSIONS_FILE}")
    return match.group(1)


def sdist_path() -> Path:
    """Path of the verified sdist, downloading it from PyPI on first use."""
    result = subprocess.run(["bash", str(FETCH_SCRIPT)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise UserError(
            "cannot get the llama-cpp-python sdist (it carries the Qwen tokenizer vocabulary): "
            f"{result.stderr.strip()}; check that PyPI is reachable or that {cache_dir()}/downloads holds it"
        )
    return Path(result.stdout.strip().splitlines()[-1])


def source_dir() -> Path:
    """The extracted llama.cpp tree (vendor/llama.cpp of the sdist), extracted once."""
    version = pinned_version()
    dest = cache_dir() / "llamacpp-src" / version
    if (dest / ".complete").is_file():
        return dest / "llama.cpp"
    sdist = sdist_path()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.partial-", dir=dest.parent))
    try:
        prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
        with tarfile.open(sdist, "r:gz") as archive:
            members = []
            for member in archive.getmembers():
                if member.name.startswith(prefix) and (member.isfile() or member.isdir()):
                    member.name = "llama.cpp/" + member.name[len(prefix):]
                    members.append(member)
            archive.extractall(tmp, members=members, filter="data")
        (tmp / ".complete").touch()
        if dest.exists():
            shutil.rmtree(dest)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest / "llama.cpp"
