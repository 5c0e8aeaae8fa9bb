"""Serve an ONNX Qwen3 model over HTTP: OpenAI- and Ollama-compatible, continuously batched.

    python -m qwen3ops.ortserver --model <onnx dir> [--host 127.0.0.1] [--port 8090] [--threads 2]

Routes: OpenAI /v1/chat/completions, /v1/completions, /v1/models; Ollama /api/chat, /api/generate,
/api/tags, /api/ps, /api/show, /api/version; /health (liveness), /ready (503 until the model is
loaded and warmed, and while draining), /metrics (Prometheus), /openapi.json.

SIGTERM or SIGINT: stop accepting connections, /ready turns 503, running requests may finish for
--shutdown-timeout seconds, then they are cancelled and the process exits. Exit status 1 when the
model cannot be loaded, 2 for bad options.

Every option can also be set as an environment variable QWEN3_ORT_<OPTION> (e.g. QWEN3_ORT_PORT=8091);
the command line wins. The API key comes from --api-key-file or QWEN3_ORT_API_KEY, never the command
line.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from qwen3ops.ortserver.config import build_parser, from_args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(__doc__ or "")
    config = from_args(parser.parse_args(argv), parser)

    import uvicorn

    from qwen3ops.ortserver.app import create_app

    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    holder: dict[str, Any] = {}

    def on_load_failure() -> None:
        holder["failed"] = True
        if "server" in holder:
            holder["server"].should_exit = True

    app = create_app(config, on_load_failure=on_load_failure)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # Readiness turns 503 and new requests are refused at once; running ones may finish.
            app.state.server.drain()
            super().handle_exit(sig, frame)

    server = Server(uvicorn.Config(app, host=config.host, port=config.port, log_level=config.log_level,
                                   timeout_graceful_shutdown=config.shutdown_timeout, lifespan="on"))
    holder["server"] = server
    if holder.get("failed"):
        return 1
    server.run()
    if holder.get("failed") or app.state.server.load_error:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
