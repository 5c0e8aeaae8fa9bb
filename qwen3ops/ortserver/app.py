"""The HTTP API: OpenAI- and Ollama-compatible routes, health, readiness, metrics (FastAPI on uvicorn).

The model loads in a background thread after the server starts listening: /health answers at once,
/ready and the API answer 503 (with Retry-After) until the model is loaded and warmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qwen3ops import __version__
from qwen3ops.ortserver import schemas
from qwen3ops.ortserver.config import ServerConfig
from qwen3ops.ortserver.engine import DrainingError, Engine, GenerationRequest, OrtRunner, QueueFullError
from qwen3ops.ortserver.metrics import Metrics
from qwen3ops.ortserver.model import ModelPackage, TextCodec
from qwen3ops.ortserver.sampling import SamplingParams

log = logging.getLogger("qwen3ops.ortserver")
OLLAMA_VERSION = "0.13.0"  # the Ollama API version whose routes and fields this server follows
WARMUP_PROMPT = "<|im_start|>user\nHello, how are you today?<|im_end|>\n<|im_start|>assistant\n"
PUBLIC_PATHS = frozenset({"/health", "/ready", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect"})
JSON_ERRORS = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               405: "invalid_request_error", 413: "invalid_request_error", 503: "service_unavailable",
               500: "server_error"}


class ApiError(Exception):
    """An answer other than 200: status, message and (OpenAI) the offending parameter."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.headers = status, message, param, headers or {}


def _is_ollama(path: str) -> bool:
    return path.startswith("/api/")


def error_response(path: str, status: int, message: str, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """The error body each API's clients expect: Ollama {"error": msg}, otherwise OpenAI's object."""
    if _is_ollama(path):
        body: dict[str, Any] = {"error": message}
    else:
        body = {"error": {"message": message, "type": JSON_ERRORS.get(status, "invalid_request_error"),
                          "param": param, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


class BodyGuard:
    """ASGI middleware: bodies over the size limit get 413; bodies that are not UTF-8 get 400 (before any
    JSON parsing); API keys are checked for every route but the public ones."""

    def __init__(self, app: ASGIApp, max_bytes: int, api_key: str | None, metrics: Metrics) -> None:
        self.app, self.max_bytes, self.api_key, self.metrics = app, max_bytes, api_key, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if self.api_key and path not in PUBLIC_PATHS:
            headers = dict(scope["headers"])
            given = headers.get(b"authorization", b"").decode("latin-1")
            token = given[7:].strip() if given[:7].lower() == "bearer " else ""
            if not hmac.compare_digest(token.encode(), self.api_key.encode()):
                self.metrics.errors.labels("401").inc()
                response = error_response(path, 401, "missing or wrong API key: send 'Authorization: Bearer "
                                          "<key>'", headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                self.metrics.errors.labels("413").inc()
                response = error_response(path, 413, f"request body larger than {self.max_bytes} bytes")
                await response(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.metrics.errors.labels("400").inc()
            response = error_response(path, 400, f"request body is not valid UTF-8 (byte {exc.start}): send "
                                      "JSON encoded as UTF-8")
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


@dataclass
class Prompt:
    ids: list[int]
    max_tokens: int
    sampling: SamplingParams
    stop: tuple[str, ...]
    ignore_eos: bool


class Server:
    """State shared by the routes: configuration, model, engine, readiness."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.metrics = Metrics(config.max_batch_size)
        self.package: ModelPackage | None = None
        self.codec: TextCodec | None = None
        self.engine: Engine | None = None
        self.ready = False
        self.load_error: str | None = None
        self.started = int(time.time())
        self.fingerprint = "ortserver-" + uuid.uuid4().hex[:8]
        self._on_load_failure: Callable[[], None] | None = None
        self._draining = False

    # --- lifecycle --------------------------------------------------------------------------------

    def load(self) -> None:
        """Load the model package, the tokenizer and the session, warm it, start the scheduler."""
        started = time.monotonic()
        try:
            package = ModelPackage.load(self.config.model, self.config.model_name)
            context = min(self.config.context_length, package.context_length)
            codec = TextCodec(package.path, package.vocab_size)
            runner = OrtRunner(package, self.config.max_batch_size, context, self.config.threads,
                               self.config.spinning)
            engine = Engine(runner, codec, package.eos_token_ids, self.metrics, self.config.max_queue,
                            self.config.prefill_chunk)
            engine.warmup(codec.encode(WARMUP_PROMPT))
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.error("cannot load the model from %s: %s", self.config.model, self.load_error)
            if self._on_load_failure is not None:
                self._on_load_failure()
            return
        self.package, self.codec, self.engine = package, codec, engine
        engine.start()
        if self._draining:  # a stop arrived while the model loaded
            engine.drain()
            return
        self.metrics.info.labels(package.name, package.precision, str(package.synthetic).lower()).set(1)
        self.metrics.ready.set(1)
        self.ready = True
        log.info("serving %s (%s%s) from %s: %d slots x %d tokens of context (%.0f MiB of cache), loaded and "
                 "warmed in %.1f s", package.name, package.precision, ", SYNTHETIC weights" if package.synthetic
                 else "", package.path, runner.slots, context, runner.bytes_per_slot * runner.slots / 2**20,
                 time.monotonic() - started)

    def drain(self) -> None:
        self._draining = True
        self.ready = False
        self.metrics.ready.set(0)
        if self.engine is not None:
            self.engine.drain()

    def stop(self) -> None:
        self.drain()
        if self.engine is not None:
            self.engine.stop()

    @property
    def context(self) -> int:
        assert self.engine is not None
        return self.engine.runner.context

    # --- request helpers --------------------------------------------------------------------------

    def require_ready(self) -> tuple[ModelPackage, TextCodec, Engine]:
        if self.engine is not None and self.engine.draining:
            self.metrics.rejected.labels("draining").inc()
            raise ApiError(503, "the server is shutting down; retry on another instance",
                           headers={"Retry-After": str(self.config.retry_after)})
        if not self.ready or self.package is None or self.codec is None or self.engine is None:
            detail = f"the model failed to load: {self.load_error}" if self.load_error else "the model is loading"
            self.metrics.rejected.labels("loading").inc()
            raise ApiError(503, detail, headers={"Retry-After": str(self.config.retry_after)})
        return self.package, self.codec, self.engine

    def check_model(self, name: str) -> None:
        assert self.package is not None
        if name != self.package.name:
            raise ApiError(404, f"model {name!r} not found; this server serves {self.package.name!r}", "model")

    def encode_checked(self, text: str, what: str) -> list[int]:
        assert self.codec is not None
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ApiError(400, f"{what} is not valid Unicode (a lone surrogate at character {exc.start})",
                           what) from exc
        return self.codec.encode(text)

    def prompt(self, ids: list[int], what: str, max_tokens: int | None, temperature: float | None,
               top_p: float | None, top_k: int | None, seed: int | None, stop: tuple[str, ...],
               ignore_eos: bool, until_full: bool = False) -> Prompt:
        """Check the prompt's length and the limits against the context; fill in the defaults."""
        assert self.package is not None
        context = self.context
        if not ids:
            raise ApiError(400, f"{what} is empty: send at least one token of text", what)
        if any(i >= self.package.vocab_size for i in ids):
            raise ApiError(400, f"{what} has token ids outside the vocabulary (0..{self.package.vocab_size - 1})",
                           what)
        if len(ids) >= context:
            raise ApiError(400, f"{what} is {len(ids)} tokens; this server's context is {context} tokens, so a "
                           f"prompt may have at most {context - 1}", what)
        room = context - len(ids)
        if until_full:
            limit = room
        elif max_tokens is None:
            limit = min(self.config.default_max_tokens, room)
        elif max_tokens > room:
            raise ApiError(400, f"max_tokens is {max_tokens} but the prompt has {len(ids)} tokens and the context "
                           f"is {context}: at most {room} tokens can be generated", "max_tokens")
        else:
            limit = max_tokens
        search = self.package.search
        if temperature is None and top_p is None and top_k is None and not search.do_sample:
            temperature = 0.0
        sampling = SamplingParams(
            temperature=search.temperature if temperature is None else temperature,
            top_k=search.top_k if top_k is None else top_k,
            top_p=search.top_p if top_p is None else top_p,
            seed=seed)
        return Prompt(ids=ids, max_tokens=limit, sampling=sampling, stop=stop, ignore_eos=ignore_eos)

    def submit(self, prompt: Prompt) -> GenerationRequest:
        _, _, engine = self.require_ready()
        request = GenerationRequest(prompt_ids=prompt.ids, max_tokens=prompt.max_tokens, sampling=prompt.sampling,
                                    stop=prompt.stop, ignore_eos=prompt.ignore_eos)
        try:
            return engine.submit(request)
        except QueueFullError as exc:
            raise ApiError(503, f"server busy: {exc}; retry later",
                           headers={"Retry-After": str(self.config.retry_after)}) from exc
        except DrainingError as exc:
            raise ApiError(503, "the server is shutting down; retry on another instance",
                           headers={"Retry-After": str(self.config.retry_after)}) from exc


# --- generation streams ----------------------------------------------------------------------------


async def _watch_disconnect(request: Request, generation: GenerationRequest) -> None:
    """Cancel the generation when the client goes away (the body has been read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            generation.cancel()
            assert generation.events is not None
            generation.events.put_nowait(("disconnected", None))
            return


async def events(generation: GenerationRequest) -> AsyncIterator[tuple[str, Any]]:
    """Text pieces of a generation, then ("done", reason) or ("error", message); cancels it if abandoned."""
    assert generation.events is not None
    finished = False
    try:
        while True:
            kind, value = await generation.events.get()
            if kind in ("done", "error", "disconnected"):
                finished = kind != "disconnected"
                yield kind, value
                return
            yield kind, value
    finally:
        if not finished:
            generation.cancel()


async def collect(request: Request, generation: GenerationRequest) -> tuple[str, str]:
    """The whole text and the finish reason; a client that disconnects cancels the generation."""
    watcher = asyncio.create_task(_watch_disconnect(request, generation))
    parts: list[str] = []
    try:
        async for kind, value in events(generation):
            if kind == "text":
                parts.append(value)
            elif kind == "done":
                return "".join(parts), value
            elif kind == "error":
                raise ApiError(500, value)
            else:
                raise ApiError(499, "client disconnected")
        raise ApiError(500, "generation ended without a result")
    finally:
        watcher.cancel()


def _now_rfc3339() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _sse(data: Any) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False).encode("utf-8") + b"\n\n"


def _ndjson(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8") + b"\n"


def _stop_tuple(stop: str | list[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(stop)


def _unsupported(condition: bool, param: str, message: str) -> None:
    if condition:
        raise ApiError(400, message, param)


def _openai_common(body: schemas._OpenAISampling) -> None:
    # (presence_penalty and frequency_penalty other than 0 are refused by the schema itself.)
    _unsupported(bool(body.logit_bias), "logit_bias", "logit_bias is not supported")


def _message_text(message: schemas.ChatMessage) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "".join(part.text for part in message.content)


# --- the application --------------------------------------------------------------------------------


def create_app(config: ServerConfig, on_load_failure: Callable[[], None] | None = None) -> FastAPI:
    server = Server(config)
    server._on_load_failure = on_load_failure

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=server.load, name="ortserver-load", daemon=True).start()
        yield
        server.stop()

    app = FastAPI(title="qwen3-ops onnxruntime server", version=__version__, lifespan=lifespan,
                  description="OpenAI- and Ollama-compatible text generation with continuous batching on "
                              "onnxruntime (model packages of the onnxruntime-genai model builder).",
                  redoc_url=None)
    app.state.server = server
    app.add_middleware(BodyGuard, max_bytes=config.max_body_bytes, api_key=config.api_key, metrics=server.metrics)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        server.metrics.errors.labels(str(exc.status)).inc()
        return error_response(request.url.path, exc.status, exc.message, exc.param, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        server.metrics.errors.labels("400").inc()
        problems, param = [], None
        for error in exc.errors()[:5]:
            location = [str(p) for p in error.get("loc", ()) if p != "body"]
            where = ".".join(location) or "body"
            param = param or where
            if error.get("type") == "json_invalid":
                problems.append(f"malformed JSON: {error.get('ctx', {}).get('error', error.get('msg'))}")
            else:
                problems.append(f"{where}: {error.get('msg')}")
        return error_response(request.url.path, 400, "; ".join(problems) or "invalid request", param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        server.metrics.errors.labels(str(exc.status_code)).inc()
        return error_response(request.url.path, exc.status_code, str(exc.detail), headers=exc.headers)

    # --- health, readiness, metrics ---------------------------------------------------------------

    @app.get("/health", summary="Liveness: 200 while the process runs; 503 if its scheduler thread died",
             responses={503: {"description": "the scheduler thread is gone: restart the process"}})
    async def health() -> Response:
        engine = server.engine
        if engine is not None and not engine.alive and not engine.draining:
            return JSONResponse({"status": "engine stopped", "ready": False}, status_code=503)
        load = engine.load() if engine is not None else {}
        return JSONResponse({"status": "ok", "ready": server.ready, **load})

    @app.get("/ready", summary="Readiness: 200 once the model is loaded and warmed, 503 before and while "
                               "draining", responses={503: {"description": "loading, failed or draining"}})
    async def ready() -> Response:
        if server.ready:
            assert server.package is not None
            return JSONResponse({"status": "ready", "model": server.package.name})
        status = "draining" if server.engine is not None and server.engine.draining else (
            "failed" if server.load_error else "loading")
        return JSONResponse({"status": status, "detail": server.load_error}, status_code=503,
                            headers={"Retry-After": str(config.retry_after)})

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {}}}})
    async def metrics() -> Response:
        return Response(server.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    # --- OpenAI -----------------------------------------------------------------------------------

    openai_errors: dict[int | str, dict[str, Any]] = {
        code: {"model": schemas.OpenAIError} for code in (400, 401, 404, 413, 503)}

    def model_card() -> schemas.ModelCard:
        package, _, _ = server.require_ready()
        return schemas.ModelCard(id=package.name, created=server.started, owned_by="qwen3-ops",
                                 synthetic=package.synthetic, precision=package.precision,
                                 max_model_len=server.context)

    @app.get("/v1/models", response_model=schemas.ModelList, responses=openai_errors)
    async def list_models() -> schemas.ModelList:
        return schemas.ModelList(data=[model_card()])

    @app.get("/v1/models/{model}", response_model=schemas.ModelCard, responses=openai_errors)
    async def get_model(model: str) -> schemas.ModelCard:
        card = model_card()
        server.check_model(model)
        return card

    async def openai_generate(request: Request, body: schemas._OpenAISampling, prompt: Prompt, chat: bool) -> Response:
        generation = server.submit(prompt)
        created = int(time.time())
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        name = body.model

        def usage() -> dict[str, int]:
            u = generation.usage()
            return {"prompt_tokens": u["prompt_tokens"], "completion_tokens": u["completion_tokens"],
                    "total_tokens": u["prompt_tokens"] + u["completion_tokens"]}

        if not body.stream:
            text, reason = await collect(request, generation)
            if chat:
                result: dict[str, Any] = {
                    "id": rid, "object": "chat.completion", "created": created, "model": name,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": reason, "logprobs": None}],
                    "usage": usage(), "system_fingerprint": server.fingerprint}
            else:
                result = {"id": rid, "object": "text_completion", "created": created, "model": name,
                          "choices": [{"index": 0, "text": text, "finish_reason": reason, "logprobs": None}],
                          "usage": usage(), "system_fingerprint": server.fingerprint}
            return JSONResponse(result)

        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        kind_name = "chat.completion.chunk" if chat else "text_completion"

        def chunk(piece: dict[str, Any] | str | None, reason: str | None) -> dict[str, Any]:
            choice: dict[str, Any] = {"index": 0, "finish_reason": reason, "logprobs": None}
            if chat:
                choice["delta"] = piece if isinstance(piece, dict) else ({"content": piece} if piece else {})
            else:
                choice["text"] = piece or ""
            data = {"id": rid, "object": kind_name, "created": created, "model": name, "choices": [choice],
                    "system_fingerprint": server.fingerprint}
            if include_usage:
                data["usage"] = None
            return data

        async def stream() -> AsyncIterator[bytes]:
            if chat:
                yield _sse(chunk({"role": "assistant", "content": ""}, None))
            async for kind, value in events(generation):
                if kind == "text":
                    yield _sse(chunk(value, None))
                elif kind == "done":
                    yield _sse(chunk(None, value))
                    if include_usage:
                        yield _sse({"id": rid, "object": kind_name, "created": created, "model": name,
                                    "choices": [], "usage": usage(), "system_fingerprint": server.fingerprint})
                elif kind == "error":
                    server.metrics.errors.labels("500").inc()
                    yield _sse({"error": {"message": value, "type": "server_error", "param": None, "code": None}})
            yield b"data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    stream_responses = {200: {"content": {"text/event-stream": {}}}}

    @app.post("/v1/chat/completions", response_model=schemas.ChatCompletion,
              responses={**openai_errors, **stream_responses},
              summary="OpenAI chat completion (stream: server-sent events)")
    async def chat_completions(request: Request, body: schemas.ChatCompletionRequest) -> Response:
        _openai_common(body)
        _unsupported(bool(body.tools), "tools", "tools are not supported by this server")
        _unsupported(bool(body.logprobs), "logprobs", "logprobs are not supported by this server")
        _unsupported(body.response_format not in (None, {"type": "text"}), "response_format",
                     "only response_format {\"type\": \"text\"} is supported")
        _, codec, _ = server.require_ready()
        server.check_model(body.model)
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": _message_text(m)}
                    for m in body.messages]
        kwargs = body.chat_template_kwargs or {}
        thinking = kwargs.get("enable_thinking")
        _unsupported(thinking is not None and not isinstance(thinking, bool), "chat_template_kwargs",
                     "chat_template_kwargs.enable_thinking must be true or false")
        if not any(m["content"] for m in messages):
            raise ApiError(400, "messages have no text: send at least one non-empty message", "messages")
        try:
            text = codec.render_chat(messages, True, thinking)
        except Exception as exc:  # the template refused the conversation (raise_exception)
            raise ApiError(400, f"the chat template cannot render these messages: {exc}", "messages") from exc
        ids = server.encode_checked(text, "messages")
        max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
        prompt = server.prompt(ids, "messages", max_tokens, body.temperature, body.top_p, body.top_k, body.seed,
                               _stop_tuple(body.stop), body.ignore_eos)
        return await openai_generate(request, body, prompt, chat=True)

    @app.post("/v1/completions", response_model=schemas.Completion,
              responses={**openai_errors, **stream_responses},
              summary="OpenAI text completion (stream: server-sent events)")
    async def completions(request: Request, body: schemas.CompletionRequest) -> Response:
        _openai_common(body)
        _unsupported(body.echo, "echo", "echo is not supported by this server")
        _unsupported(body.logprobs is not None, "logprobs", "logprobs are not supported by this server")
        _unsupported(bool(body.suffix), "suffix", "suffix is not supported by this server")
        server.require_ready()
        server.check_model(body.model)
        ids = server.encode_checked(body.prompt, "prompt") if isinstance(body.prompt, str) else list(body.prompt)
        prompt = server.prompt(ids, "prompt", body.max_tokens, body.temperature, body.top_p, body.top_k, body.seed,
                               _stop_tuple(body.stop), body.ignore_eos)
        return await openai_generate(request, body, prompt, chat=False)

    # --- Ollama -----------------------------------------------------------------------------------

    ollama_errors: dict[int | str, dict[str, Any]] = {
        code: {"model": schemas.OllamaError} for code in (400, 401, 404, 413, 503)}
    ndjson_responses = {200: {"content": {"application/x-ndjson": {}}}}

    def ollama_prompt(ids: list[int], what: str, body: schemas._OllamaRequest) -> Prompt:
        options = body.options or schemas.OllamaOptions()
        until_full = options.num_predict is not None and options.num_predict < 0
        max_tokens = options.num_predict if options.num_predict and options.num_predict > 0 else None
        return server.prompt(ids, what, max_tokens, options.temperature, options.top_p, options.top_k,
                             options.seed, tuple(options.stop or ()), False, until_full=until_full)

    def ollama_checks(body: schemas._OllamaRequest) -> None:
        _unsupported(body.format not in (None, ""), "format", "format (JSON mode) is not supported by this server")

    def thinking(body: schemas._OllamaRequest) -> bool | None:
        return None if body.think is None else body.think is not False

    def stats(generation: GenerationRequest | None, name: str, reason: str) -> dict[str, Any]:
        data: dict[str, Any] = {"model": name, "created_at": _now_rfc3339(), "done": True, "done_reason": reason}
        if generation is not None:
            u = generation.usage()
            data.update(total_duration=int(u["total_seconds"] * 1e9), load_duration=0,
                        prompt_eval_count=u["prompt_tokens"], prompt_eval_duration=int(u["prompt_seconds"] * 1e9),
                        eval_count=u["completion_tokens"], eval_duration=int(u["generation_seconds"] * 1e9))
        return data

    async def ollama_generate_common(request: Request, body: schemas._OllamaRequest, prompt: Prompt,
                                     wrap: Callable[[str], dict[str, Any]]) -> Response:
        generation = server.submit(prompt)
        name = body.model
        if not body.stream:
            text, reason = await collect(request, generation)
            return JSONResponse({**stats(generation, name, reason), **wrap(text)})

        async def stream() -> AsyncIterator[bytes]:
            async for kind, value in events(generation):
                if kind == "text":
                    yield _ndjson({"model": name, "created_at": _now_rfc3339(), **wrap(value), "done": False})
                elif kind == "done":
                    yield _ndjson({**stats(generation, name, value), **wrap("")})
                elif kind == "error":
                    server.metrics.errors.labels("500").inc()
                    yield _ndjson({"error": value})

        return StreamingResponse(stream(), media_type="application/x-ndjson")

    @app.post("/api/generate", response_model=schemas.OllamaGenerateResponse,
              responses={**ollama_errors, **ndjson_responses},
              summary="Ollama generate (stream: newline-delimited JSON; the default)")
    async def ollama_generate(request: Request, body: schemas.OllamaGenerateRequest) -> Response:
        _, codec, _ = server.require_ready()
        server.check_model(body.model)
        ollama_checks(body)
        _unsupported(bool(body.suffix), "suffix", "suffix is not supported by this server")
        _unsupported(bool(body.template), "template", "a custom template is not supported by this server")
        _unsupported(bool(body.images), "images", "images are not supported by this model")
        if not body.prompt and not body.context:
            # Ollama's "load the model" call: nothing to generate.
            return JSONResponse({**stats(None, body.model, "load"), "response": ""})
        if body.raw:
            text = body.prompt or ""
        else:
            messages = ([{"role": "system", "content": body.system}] if body.system else []) + \
                [{"role": "user", "content": body.prompt or ""}]
            text = codec.render_chat(messages, True, thinking(body))
        ids = list(body.context or []) + (server.encode_checked(text, "prompt") if text else [])
        prompt = ollama_prompt(ids, "prompt", body)
        return await ollama_generate_common(request, body, prompt, lambda t: {"response": t})

    @app.post("/api/chat", response_model=schemas.OllamaChatResponse,
              responses={**ollama_errors, **ndjson_responses},
              summary="Ollama chat (stream: newline-delimited JSON; the default)")
    async def ollama_chat(request: Request, body: schemas.OllamaChatRequest) -> Response:
        _, codec, _ = server.require_ready()
        server.check_model(body.model)
        ollama_checks(body)
        _unsupported(bool(body.tools), "tools", "tools are not supported by this server")
        _unsupported(any(m.images for m in body.messages), "images", "images are not supported by this model")
        if not body.messages:
            return JSONResponse({**stats(None, body.model, "load"),
                                 "message": {"role": "assistant", "content": ""}})
        messages = [{"role": m.role, "content": m.content} for m in body.messages]
        if not any(m["content"] for m in messages):
            raise ApiError(400, "messages have no text: send at least one non-empty message", "messages")
        try:
            text = codec.render_chat(messages, True, thinking(body))
        except Exception as exc:
            raise ApiError(400, f"the chat template cannot render these messages: {exc}", "messages") from exc
        prompt = ollama_prompt(server.encode_checked(text, "messages"), "messages", body)
        return await ollama_generate_common(request, body, prompt,
                                            lambda t: {"message": {"role": "assistant", "content": t}})

    def ollama_model() -> dict[str, Any]:
        package, _, _ = server.require_ready()
        parameters = package.manifest.get("parameters")
        return {"name": package.name, "model": package.name, "modified_at": package.modified,
                "size": package.size_bytes, "digest": package.digest,
                "details": {"parent_model": "", "format": "onnx", "family": "qwen3", "families": ["qwen3"],
                            "parameter_size": f"{parameters / 1e9:.2f}B" if isinstance(parameters, int) else "",
                            "quantization_level": package.precision.upper()}}

    @app.get("/api/tags", response_model=schemas.OllamaTags, responses=ollama_errors)
    async def ollama_tags() -> dict[str, Any]:
        return {"models": [ollama_model()]}

    @app.get("/api/ps", responses=ollama_errors, summary="Ollama running models")
    async def ollama_ps() -> dict[str, Any]:
        model = ollama_model()
        return {"models": [{**model, "expires_at": "9999-12-31T23:59:59Z", "size_vram": 0}]}

    @app.post("/api/show", responses=ollama_errors, summary="Ollama model information")
    async def ollama_show(body: schemas.OllamaShowRequest) -> dict[str, Any]:
        package, _, _ = server.require_ready()
        server.check_model(body.model)
        model = ollama_model()
        return {"modelfile": "", "parameters": "", "template": "", "details": model["details"],
                "model_info": {"general.architecture": "qwen3", "qwen3.context_length": server.context,
                               "general.synthetic": package.synthetic},
                "capabilities": ["completion"], "modified_at": package.modified}

    @app.get("/api/version", response_model=schemas.OllamaVersion, responses=ollama_errors)
    async def ollama_version() -> dict[str, str]:
        return {"version": OLLAMA_VERSION}

    def openapi() -> dict[str, Any]:
        """FastAPI's schema, minus its default 422 answers (validation errors are 400 here), with the served
        model's name as the one valid `model` once it is loaded."""
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            for operations in schema["paths"].values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            components = schema.get("components", {}).get("schemas", {})
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            if server.package is None:
                return schema  # not cached: the model's name is not known yet
            for component in components.values():
                model = component.get("properties", {}).get("model")
                if model is not None and "model" in component.get("required", []) and model.get("type") == "string":
                    model["enum"] = [server.package.name]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
