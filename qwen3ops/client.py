"""One HTTP client layer for every serving backend: the OpenAI-compatible API and the Ollama API.

The status play, the deployment checks, the benchmarks and the tests all use it.

    python -m qwen3ops.client status --url http://127.0.0.1:8080 [--url ...] [--json]
    python -m qwen3ops.client chat --url http://127.0.0.1:8080 "你好" [--max-tokens 16]

`status` reports for each endpoint: up or down, backend, model (with "synthetic weights" when the
server says so), version, and the latency of a one-token request.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

Api = Literal["openai", "ollama"]


@dataclass(frozen=True)
class Endpoint:
    url: str
    api: Api = "openai"
    api_key: str | None = None
    model: str | None = None

    @property
    def base(self) -> str:
        return self.url.rstrip("/")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


@dataclass
class StreamResult:
    """One streamed request, timed: `chunk_times` are the arrival times (perf_counter) of content."""

    ok: bool = False
    error: str | None = None
    status: int | None = None
    start: float = 0.0
    end: float = 0.0
    chunk_times: list[float] = field(default_factory=list)
    text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    model: str | None = None

    @property
    def ttft(self) -> float | None:
        return self.chunk_times[0] - self.start if self.chunk_times else None

    @property
    def latency(self) -> float:
        return self.end - self.start


def error_kind(exc: BaseException | None = None, status: int | None = None) -> str:
    """A short, stable name for a failure, for counting failures by kind."""
    if status is not None:
        return f"http_{status}"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect_error"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol_error"
    if isinstance(exc, (httpx.ReadError, httpx.WriteError)):
        return "read_error"
    return type(exc).__name__ if exc else "unknown"


def _openai_body(ep: Endpoint, messages: list[dict[str, str]], max_tokens: int, stream: bool,
                 ignore_eos: bool, temperature: float, seed: int | None, extra: dict[str, Any] | None) -> dict:
    body: dict[str, Any] = {"model": ep.model or "default", "messages": messages, "max_tokens": max_tokens,
                            "stream": stream, "temperature": temperature}
    if stream:
        body["stream_options"] = {"include_usage": True}
    if ignore_eos:
        body["ignore_eos"] = True
    if seed is not None:
        body["seed"] = seed
    return {**body, **(extra or {})}


def _ollama_body(ep: Endpoint, messages: list[dict[str, str]], max_tokens: int, stream: bool,
                 ignore_eos: bool, temperature: float, seed: int | None, extra: dict[str, Any] | None) -> dict:
    options: dict[str, Any] = {"num_predict": max_tokens, "temperature": temperature}
    if seed is not None:
        options["seed"] = seed
    body: dict[str, Any] = {"model": ep.model or "default", "messages": messages, "stream": stream,
                            "options": options}
    if ignore_eos:
        body["options"]["ignore_eos"] = True  # honoured by our ONNX server; Ollama itself ignores it
    return {**body, **(extra or {})}


async def chat_stream(client: httpx.AsyncClient, ep: Endpoint, messages: list[dict[str, str]], *,
                      max_tokens: int = 64, ignore_eos: bool = False, temperature: float = 0.0,
                      seed: int | None = None, extra: dict[str, Any] | None = None,
                      on_chunk: Callable[[float], None] | None = None) -> StreamResult:
    """Send one streamed chat request and time every content chunk. Never raises for HTTP failures."""
    result = StreamResult(start=time.perf_counter())
    if ep.api == "openai":
        url = ep.base + "/v1/chat/completions"
        body = _openai_body(ep, messages, max_tokens, True, ignore_eos, temperature, seed, extra)
    else:
        url = ep.base + "/api/chat"
        body = _ollama_body(ep, messages, max_tokens, True, ignore_eos, temperature, seed, extra)
    pieces: list[str] = []
    try:
        async with client.stream("POST", url, json=body, headers=ep.headers()) as response:
            result.status = response.status_code
            if response.status_code != 200:
                await response.aread()
                result.error = error_kind(status=response.status_code)
                return result
            async for line in response.aiter_lines():
                now = time.perf_counter()
                if ep.api == "openai":
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    result.model = chunk.get("model", result.model)
                    if chunk.get("usage"):
                        result.prompt_tokens = chunk["usage"].get("prompt_tokens")
                        result.completion_tokens = chunk["usage"].get("completion_tokens")
                    for choice in chunk.get("choices") or []:
                        # Qwen3's thinking arrives as reasoning_content on servers that parse it: it
                        # is generated text all the same, and times the stream the same way.
                        fields = choice.get("delta") or {}
                        delta = fields.get("content") or fields.get("reasoning_content") or ""
                        if delta:
                            pieces.append(delta)
                            result.chunk_times.append(now)
                            if on_chunk:
                                on_chunk(now)
                else:
                    if not line.strip():
                        continue
                    chunk = json.loads(line)
                    result.model = chunk.get("model", result.model)
                    delta = (chunk.get("message") or {}).get("content") or ""
                    if delta:
                        pieces.append(delta)
                        result.chunk_times.append(now)
                        if on_chunk:
                            on_chunk(now)
                    if chunk.get("done"):
                        result.prompt_tokens = chunk.get("prompt_eval_count")
                        result.completion_tokens = chunk.get("eval_count")
                        break
        result.ok = True
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        result.error = error_kind(exc)
    finally:
        result.end = time.perf_counter()
        result.text = "".join(pieces)
        if result.ok and result.completion_tokens is None:
            result.completion_tokens = len(result.chunk_times)
    return result


def chat(ep: Endpoint, messages: list[dict[str, str]], *, max_tokens: int = 16, timeout: float = 120.0,
         temperature: float = 0.0) -> dict[str, Any]:
    """One non-streamed chat request; returns {"text", "model", "completion_tokens", "latency"}."""
    start = time.perf_counter()
    if ep.api == "openai":
        body = _openai_body(ep, messages, max_tokens, False, False, temperature, None, None)
        response = httpx.post(ep.base + "/v1/chat/completions", json=body, headers=ep.headers(), timeout=timeout)
        response.raise_for_status()
        data = response.json()
        text = data["choices"][0]["message"].get("content") or ""
        tokens = (data.get("usage") or {}).get("completion_tokens")
    else:
        body = _ollama_body(ep, messages, max_tokens, False, False, temperature, None, None)
        response = httpx.post(ep.base + "/api/chat", json=body, headers=ep.headers(), timeout=timeout)
        response.raise_for_status()
        data = response.json()
        text = data["message"]["content"]
        tokens = data.get("eval_count")
    return {"text": text, "model": data.get("model"), "completion_tokens": tokens,
            "latency": time.perf_counter() - start}


def list_models(ep: Endpoint, timeout: float = 10.0) -> list[dict[str, Any]]:
    if ep.api == "openai":
        response = httpx.get(ep.base + "/v1/models", headers=ep.headers(), timeout=timeout)
        response.raise_for_status()
        return list(response.json().get("data", []))
    response = httpx.get(ep.base + "/api/tags", headers=ep.headers(), timeout=timeout)
    response.raise_for_status()
    return [{"id": m["name"], **m} for m in response.json().get("models", [])]


def _version(ep: Endpoint, timeout: float) -> str | None:
    for path in ("/api/version", "/props", "/version"):
        try:
            response = httpx.get(ep.base + path, headers=ep.headers(), timeout=timeout)
        except httpx.HTTPError:
            continue
        if response.status_code == 200:
            data = response.json()
            version = data.get("version") or data.get("build_info")
            if version:
                return str(version)
    return None


def status(ep: Endpoint, timeout: float = 30.0) -> dict[str, Any]:
    """Up/down, model, synthetic flag, version and one-token latency of one endpoint."""
    report: dict[str, Any] = {"url": ep.base, "api": ep.api, "up": False, "ready": False}
    try:
        health = httpx.get(ep.base + ("/health" if ep.api == "openai" else "/"), timeout=timeout)
        report["health_status"] = health.status_code
        report["up"] = True
        report["ready"] = health.status_code == 200
        models = list_models(ep, timeout)
        if models:
            model = models[0]
            report["model"] = model.get("id")
            meta = model.get("meta") or model.get("details") or {}
            report["synthetic"] = "synthetic" in json.dumps(model).lower() or bool(meta.get("synthetic"))
            report["owned_by"] = model.get("owned_by")
        report["version"] = _version(ep, timeout)
        one = chat(Endpoint(ep.url, ep.api, ep.api_key, ep.model or report.get("model")),
                   [{"role": "user", "content": "ping"}], max_tokens=1, timeout=timeout)
        report["one_token_latency_s"] = round(one["latency"], 4)
    except httpx.HTTPError as exc:
        report["error"] = f"{error_kind(exc)}: {exc}"
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qwen3ops.client", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", choices=["openai", "ollama"], default="openai")
    parser.add_argument("--api-key-file", default=None, help="file holding the API key (never on the command line)")
    sub = parser.add_subparsers(dest="command", required=True)
    st = sub.add_parser("status", help="report each endpoint: up, model, version, one-token latency")
    st.add_argument("--url", action="append", required=True)
    st.add_argument("--json", action="store_true")
    ch = sub.add_parser("chat", help="send one chat message and print the answer")
    ch.add_argument("--url", required=True)
    ch.add_argument("--model", default=None)
    ch.add_argument("--max-tokens", type=int, default=16)
    ch.add_argument("message")
    args = parser.parse_args(argv)
    key = Path(args.api_key_file).read_text(encoding="utf-8").strip() if args.api_key_file else None
    if args.command == "status":
        reports = [status(Endpoint(u, args.api, key)) for u in args.url]
        if args.json:
            print(json.dumps(reports))
        else:
            for r in reports:
                state = "UP" if r["ready"] else ("STARTING" if r["up"] else "DOWN")
                weights = "synthetic weights" if r.get("synthetic") else "real weights"
                print(f"{r['url']:32} {state:8} {r.get('model', '-')} ({weights}) version={r.get('version')} "
                      f"1-token={r.get('one_token_latency_s', '-')}s {r.get('error', '')}")
        return 0 if all(r["ready"] for r in reports) else 1
    answer = chat(Endpoint(args.url, args.api, key, args.model), [{"role": "user", "content": args.message}],
                  max_tokens=args.max_tokens)
    print(json.dumps(answer, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

