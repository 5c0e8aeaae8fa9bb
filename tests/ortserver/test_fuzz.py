"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (schemathesis, its command line: the
pytest plugin of schemathesis 4.32 does not load under pytest 9): whatever the request, the server never
answers 5xx, and answers only the status codes, content types and shapes it documents. Bounded (a fixed
seed, a few examples per operation): ~20 s on the tiny model."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.ortserver.conftest import ServerProcess

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_fuzzing_finds_no_5xx_and_no_undocumented_answer(server: ServerProcess, tmp_path: Path) -> None:
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    result = subprocess.run(
        [executable, "run", server.url + "/openapi.json", "--checks", CHECKS, "--max-examples", "10", "--seed", "1",
         "--phases", "examples,coverage,fuzzing", "--request-timeout", "60", "--workers", "1", "--no-color"],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)  # its cache stays out of the tree
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary + result.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary.split("Test cases:")[-1], summary
    assert server.metric("ortserver_errors_total", 'kind="500"') == 0
