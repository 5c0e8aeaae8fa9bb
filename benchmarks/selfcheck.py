"""Self-check: the load generator's own ceiling, against a trivial local streaming server.

A minimal HTTP/1.1 server (in its own process, on 127.0.0.1) answers every chat request at once
with a stream of OpenAI-style chunks. Whatever request rate the load generator reaches against it
is the most it could ever measure; a report compares that with the LLM endpoint's rate, and states
the generator's CPU use, to show the tool was never the bottleneck.

    python -m benchmarks.selfcheck [--requests 2000] [--concurrency 32] [--chunks 16] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import sys
import time
from typing import Any

import psutil

from benchmarks.loadgen import Level, run_level
from benchmarks.workload import Request
from qwen3ops.client import Endpoint


def _serve(port: int, chunks: int, ready: Any) -> None:
    chunk = 'data: {"choices":[{"delta":{"content":"x"}}],"model":"selfcheck"}\n\n'
    body = (chunk * chunks + "data: [DONE]\n\n").encode()
    head = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                headers = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in headers.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                writer.write(head + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(requests: int = 2000, concurrency: int = 32, chunks: int = 16, progress: bool = False) -> dict[str, Any]:
    port = _free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=_serve, args=(port, chunks, ready), daemon=True)
    server.start()
    try:
        ready.wait(10)
        ep = Endpoint(f"http://127.0.0.1:{port}", "openai", model="selfcheck")
        reqs = [Request(i, [{"role": "user", "content": "ping"}], 1, chunks) for i in range(64)]
        me = psutil.Process()
        cpu_before = me.cpu_times()
        start = time.perf_counter()
        records = asyncio.run(run_level(ep, reqs, Level(concurrency=concurrency), max_requests=requests,
                                        max_duration=120, warmup=1, progress=progress))
        wall = time.perf_counter() - start
        cpu_after = me.cpu_times()
    finally:
        server.terminate()
        server.join(5)
    ok = sum(r["ok"] for r in records)
    cpu = (cpu_after.user - cpu_before.user + cpu_after.system - cpu_before.system) / wall * 100
    return {"requests": len(records), "completed": ok, "requests_per_s": ok / wall,
            "chunks_per_s": ok * chunks / wall, "loadgen_cpu_percent": cpu, "concurrency": concurrency,
            "chunks_per_request": chunks}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.selfcheck", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--chunks", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.requests, args.concurrency, args.chunks, progress=not args.json)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"load generator ceiling: {result['requests_per_s']:.0f} requests/s, {result['chunks_per_s']:.0f} "
              f"streamed chunks/s at concurrency {args.concurrency}, using {result['loadgen_cpu_percent']:.0f}% "
              "of one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
