"""The HTTP API in process (the real tiny model, no network): validation answers 4xx with a message that
names the problem, in each API's error format; responses and streams have the shapes clients parse."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from qwen3ops.ortserver.app import create_app
from qwen3ops.ortserver.config import ServerConfig

NAME = "qwen3-tiny-int4-synthetic"


def wait_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 60
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, client.get("/ready").json()
        time.sleep(0.1)


@pytest.fixture(scope="module")
def client(tiny_onnx: Path) -> Iterator[TestClient]:
    config = ServerConfig(model=tiny_onnx, context_length=512, max_body_bytes=65536, default_max_tokens=8,
                          threads=1)
    with TestClient(create_app(config)) as test_client:
        wait_ready(test_client)
        yield test_client


def chat(**fields) -> dict:
    return {"model": NAME, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4, **fields}


def openai_error(response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert {"message", "type", "param", "code"} <= set(error)
    for word in words:
        assert word in error["message"], error["message"]
    return error["message"]


def test_models_list_names_the_synthetic_model(client: TestClient) -> None:
    data = client.get("/v1/models").json()["data"]
    assert [m["id"] for m in data] == [NAME]
    assert data[0]["synthetic"] is True and data[0]["max_model_len"] == 512
    tags = client.get("/api/tags").json()["models"]
    assert tags[0]["name"] == NAME and tags[0]["details"]["quantization_level"] == "INT4"
    assert client.get("/api/version").json()["version"]
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/ready").json() == {"status": "ready", "model": NAME}


def test_chat_and_completion_responses(client: TestClient) -> None:
    body = client.post("/v1/chat/completions", json=chat(max_tokens=5, ignore_eos=True)).json()
    assert body["object"] == "chat.completion" and body["model"] == NAME
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 5 and body["usage"]["prompt_tokens"] > 0
    body = client.post("/v1/completions", json={"model": NAME, "prompt": [1, 2, 3], "max_tokens": 3,
                                                "ignore_eos": True}).json()
    assert body["object"] == "text_completion" and body["usage"]["prompt_tokens"] == 3


def test_unknown_fields_are_ignored(client: TestClient) -> None:
    assert client.post("/v1/chat/completions", json=chat(parallel_tool_calls=True, metadata={"a": 1})).status_code \
        == 200


@pytest.mark.parametrize(("fields", "words"), [
    ({"max_tokens": "5"}, ["max_tokens"]),
    ({"temperature": "hot"}, ["temperature"]),
    ({"messages": "Hello"}, ["messages"]),
    ({"messages": []}, ["messages"]),
    ({"messages": [{"role": "robot", "content": "x"}]}, ["role"]),
    ({"stream": "yes"}, ["stream"]),
    ({"temperature": -1}, ["temperature"]),
    ({"top_p": 0}, ["top_p"]),
    ({"max_tokens": 0}, ["max_tokens"]),
    ({"n": 2}, ["n"]),
    ({"stop": ["x"] * 17}, ["stop"]),
    ({"stop": [""]}, ["stop"]),
    ({"presence_penalty": 1.0}, ["presence_penalty"]),
    ({"logit_bias": {"5": 1.0}}, ["not supported"]),
    ({"logprobs": True}, ["not supported"]),
    ({"tools": [{"type": "function"}]}, ["not supported"]),
    ({"max_tokens": 100000}, ["max_tokens", "context"]),
    ({"messages": [{"role": "user", "content": ""}]}, ["no text"]),
])
def test_bad_chat_requests_get_400_with_a_message(client: TestClient, fields: dict, words: list[str]) -> None:
    openai_error(client.post("/v1/chat/completions", json=chat(**fields)), 400, *words)


def test_malformed_bodies(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    openai_error(client.post("/v1/chat/completions", content=b'{"model": ', headers=headers), 400, "malformed JSON")
    openai_error(client.post("/v1/chat/completions", content=b"[1, 2]", headers=headers), 400)
    openai_error(client.post("/v1/chat/completions", content=b'{"model": "\xff\xfe"}', headers=headers), 400,
                 "UTF-8")
    surrogate = b'{"model": "%s", "messages": [{"role": "user", "content": "a\\ud800b"}]}' % NAME.encode()
    openai_error(client.post("/v1/chat/completions", content=surrogate, headers=headers), 400, "surrogate")
    big = json.dumps(chat(messages=[{"role": "user", "content": "x" * 70000}]))
    openai_error(client.post("/v1/chat/completions", content=big, headers=headers), 413, "larger than")


def test_prompt_limits(client: TestClient) -> None:
    openai_error(client.post("/v1/completions", json={"model": NAME, "prompt": ""}), 400, "empty")
    openai_error(client.post("/v1/completions", json={"model": NAME, "prompt": "word " * 600}), 400,
                 "context is 512")
    openai_error(client.post("/v1/completions", json={"model": NAME, "prompt": [10**9]}), 400, "vocabulary")
    openai_error(client.post("/v1/chat/completions", json=chat(model="gpt-4")), 404, "not found", NAME)


def test_ollama_errors_use_ollama_format(client: TestClient) -> None:
    response = client.post("/api/chat", json={"model": NAME, "messages": [{"role": "user", "content": 5}]})
    assert response.status_code == 400 and isinstance(response.json()["error"], str)
    assert "content" in response.json()["error"]
    response = client.post("/api/generate", json={"model": "nope", "prompt": "x"})
    assert response.status_code == 404 and "not found" in response.json()["error"]
    response = client.post("/api/generate", json={"model": NAME, "prompt": "x", "options": {"top_k": -1}})
    assert response.status_code == 400 and "top_k" in response.json()["error"]


def test_openai_stream_is_server_sent_events(client: TestClient) -> None:
    lines = []
    with client.stream("POST", "/v1/chat/completions",
                       json=chat(max_tokens=6, ignore_eos=True, stream=True,
                                 stream_options={"include_usage": True})) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [c["choices"][0]["finish_reason"] for c in finals] == ["length"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 6


def test_ollama_stream_is_ndjson_ending_with_stats(client: TestClient) -> None:
    with client.stream("POST", "/api/generate", json={"model": NAME, "prompt": "Hi", "options": {"num_predict": 5}}) \
            as response:
        assert response.headers["content-type"].startswith("application/x-ndjson")
        parts = [json.loads(line) for line in response.iter_lines() if line]
    assert all(p["done"] is False for p in parts[:-1])
    assert parts[-1]["done"] is True and parts[-1]["done_reason"] in ("length", "stop")
    assert parts[-1]["eval_count"] <= 5 and parts[-1]["prompt_eval_count"] > 0


def test_seed_reproduces_and_stop_cuts(client: TestClient) -> None:
    sampled = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 42, "max_tokens": 12, "ignore_eos": True}
    first = client.post("/v1/chat/completions", json=chat(**sampled)).json()["choices"][0]["message"]["content"]
    again = client.post("/v1/chat/completions", json=chat(**sampled)).json()["choices"][0]["message"]["content"]
    assert first == again
    greedy = client.post("/v1/completions", json={"model": NAME, "prompt": "Once upon a time", "max_tokens": 12,
                                                  "temperature": 0, "ignore_eos": True}).json()
    text = greedy["choices"][0]["text"]
    stop = text[len(text) // 2: len(text) // 2 + 2]
    cut = client.post("/v1/completions", json={"model": NAME, "prompt": "Once upon a time", "max_tokens": 12,
                                               "temperature": 0, "ignore_eos": True, "stop": stop}).json()
    assert cut["choices"][0]["finish_reason"] == "stop" and cut["choices"][0]["text"] == text[: text.index(stop)]


def test_metrics_and_openapi(client: TestClient) -> None:
    text = client.get("/metrics").text
    for name in ("ortserver_requests_waiting", "ortserver_requests_running", "ortserver_batch_size_bucket",
                 "ortserver_prompt_tokens_total", "ortserver_generated_tokens_total",
                 "ortserver_time_to_first_token_seconds_bucket", "ortserver_time_per_output_token_seconds_bucket",
                 "ortserver_errors_total", 'ortserver_model_info{model="qwen3-tiny-int4-synthetic"'):
        assert name in text, name
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/chat/completions", "/v1/completions", "/v1/models", "/api/chat", "/api/generate", "/api/tags",
            "/api/version", "/health", "/ready", "/metrics"} <= set(paths)


def test_api_key_from_file(tiny_onnx: Path, tmp_path: Path) -> None:
    from qwen3ops.ortserver.config import build_parser, from_args

    key_file = tmp_path / "key"
    key_file.write_text("s3cret\n")
    parser = build_parser("")
    config = from_args(parser.parse_args(["--model", str(tiny_onnx), "--api-key-file", str(key_file),
                                          "--context-length", "256", "--threads", "1"]), parser)
    assert config.api_key == "s3cret"
    with TestClient(create_app(config)) as keyed:
        wait_ready(keyed)
        assert keyed.get("/health").status_code == 200  # public
        openai_error(keyed.get("/v1/models"), 401, "API key")
        assert keyed.get("/api/tags").json()["error"].startswith("missing or wrong API key")
        assert keyed.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert keyed.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
