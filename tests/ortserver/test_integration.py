"""The real server on loopback with the qwen3-tiny ONNX model, driven by the ollama and openai clients:
streamed and non-streamed completions, concurrent requests batched (seen in /metrics), 503 with Retry-After
on a full queue, a disconnecting client cancels its generation, SIGTERM lets running requests finish
within the deadline and cuts the rest."""

from __future__ import annotations

import concurrent.futures
import json
import time
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from tests.ortserver.conftest import ServerProcess

NAME = "qwen3-tiny-int4-synthetic"


def completion(url: str, max_tokens: int, timeout: float = 120, **fields) -> httpx.Response:
    body = {"model": NAME, "prompt": "Tell me a story", "max_tokens": max_tokens, "ignore_eos": True, **fields}
    return httpx.post(url + "/v1/completions", json=body, timeout=timeout)


def test_openai_client_streamed_and_not(server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    assert [m.id for m in client.models.list()] == [NAME]
    reply = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Hi"}], max_tokens=8,
                                           extra_body={"ignore_eos": True})
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 8
    stream = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Hi"}], max_tokens=8,
                                            stream=True, seed=3, temperature=0.9,
                                            extra_body={"ignore_eos": True})
    pieces, reasons = [], []
    for chunk in stream:
        pieces.append(chunk.choices[0].delta.content or "")
        reasons.append(chunk.choices[0].finish_reason)
    assert reasons[-1] == "length" and "".join(pieces)
    text = client.completions.create(model=NAME, prompt="Once upon", max_tokens=5, temperature=0,
                                     extra_body={"ignore_eos": True})
    assert text.choices[0].finish_reason == "length" and text.usage.completion_tokens == 5
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Hi"}], temperature=5)


def test_ollama_client_streamed_and_not(server: ServerProcess) -> None:
    client = ollama.Client(host=server.url)
    assert [m.model for m in client.list().models] == [NAME]
    reply = client.chat(model=NAME, messages=[{"role": "user", "content": "Hi"}],
                        options={"num_predict": 6, "seed": 7, "temperature": 0.5})
    assert reply.done and reply.message.role == "assistant" and reply.eval_count <= 6
    parts = list(client.generate(model=NAME, prompt="Hello", stream=True, options={"num_predict": 6}))
    assert parts[-1].done and all(not p.done for p in parts[:-1])
    assert parts[-1].eval_count == 6 or parts[-1].done_reason == "stop"
    streamed_chat = list(client.chat(model=NAME, messages=[{"role": "user", "content": "Hi"}], stream=True,
                                     options={"num_predict": 4}))
    assert streamed_chat[-1].done
    with pytest.raises(ollama.ResponseError) as excinfo:
        client.chat(model="llama3", messages=[{"role": "user", "content": "Hi"}])
    assert excinfo.value.status_code == 404


def test_concurrent_requests_share_decode_steps(server: ServerProcess) -> None:
    def counts() -> tuple[float, float, float]:
        return (server.metric("ortserver_batch_size_count"),
                server.metric("ortserver_batch_size_bucket", 'le="1.0"'),
                server.metric("ortserver_batch_size_bucket", 'le="3.0"'))

    before = counts()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: completion(server.url, 64, seed=i), range(4)))
    assert all(r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 64 for r in results)
    after = counts()
    steps = after[0] - before[0]
    batched = steps - (after[1] - before[1])  # steps that decoded two or more sequences
    four = steps - (after[2] - before[2])  # steps that decoded all four
    assert batched > 0 and four > 0, (steps, batched, four)
    assert steps < 4 * 63, f"{steps} decode steps for 4 x 64 tokens: the requests were not batched"


@pytest.fixture(scope="module")
def slow_server(tiny_onnx: Path):
    """One slot, a queue of one, a long context (for long generations), a short shutdown deadline."""
    proc = ServerProcess(tiny_onnx, "--context-length", "4096", "--max-batch-size", "1", "--max-queue", "1",
                         "--retry-after", "3")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.terminate()


def test_full_queue_answers_503_with_retry_after(slow_server: ServerProcess) -> None:
    url = slow_server.url
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        running = pool.submit(completion, url, 2500)
        _wait_for(lambda: slow_server.metric("ortserver_requests_running") == 1)
        queued = pool.submit(completion, url, 4)
        _wait_for(lambda: slow_server.metric("ortserver_requests_waiting") == 1)
        refused = completion(url, 4)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "3"
        assert "busy" in refused.json()["error"]["message"]
        ollama_refused = httpx.post(url + "/api/generate", json={"model": NAME, "prompt": "x"}, timeout=30)
        assert ollama_refused.status_code == 503 and "busy" in ollama_refused.json()["error"]
        assert running.result().status_code == 200 and queued.result().status_code == 200
    assert slow_server.metric("ortserver_requests_rejected_total", 'reason="queue_full"') >= 2


def test_client_disconnect_cancels_generation(slow_server: ServerProcess) -> None:
    url = slow_server.url
    before = slow_server.metric("ortserver_requests_finished_total", 'reason="cancelled"')
    body = {"model": NAME, "prompt": "Go", "max_tokens": 3000, "ignore_eos": True, "stream": True}
    started = time.monotonic()
    with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60) as response:
        for index, _ in enumerate(response.iter_lines()):
            if index > 5:
                break
    _wait_for(lambda: slow_server.metric("ortserver_requests_finished_total", 'reason="cancelled"') == before + 1)
    assert slow_server.metric("ortserver_requests_running") == 0
    # A non-streamed request whose client gives up is cancelled too.
    with pytest.raises(httpx.TimeoutException):
        completion(url, 3000, timeout=1.0)
    _wait_for(lambda: slow_server.metric("ortserver_requests_finished_total", 'reason="cancelled"') == before + 2)
    assert time.monotonic() - started < 8, "cancelled generations ran on"
    assert completion(url, 3).status_code == 200


def test_graceful_shutdown_finishes_short_requests_and_cuts_long_ones(tiny_onnx: Path) -> None:
    proc = ServerProcess(tiny_onnx, "--context-length", "4096", "--max-batch-size", "2", "--shutdown-timeout", "4")
    try:
        proc.wait_ready()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            long = pool.submit(_stream_tokens, proc.url, 3800)
            short = pool.submit(completion, proc.url, 120)
            _wait_for(lambda: proc.metric("ortserver_requests_running") == 2)
            stopped_at = time.monotonic()
            proc.process.send_signal(15)
            short_response = short.result()
            long_tokens, long_complete = long.result()
            code = proc.process.wait(30)
            elapsed = time.monotonic() - stopped_at
    finally:
        proc.terminate()
    assert short_response.status_code == 200 and short_response.json()["usage"]["completion_tokens"] == 120
    assert not long_complete and 0 < long_tokens < 3800
    # uvicorn re-raises the signal once it has shut down: the status says "ended by SIGTERM", as expected.
    assert code in (0, -15) and elapsed < 4 + 6, f"exit {code} after {elapsed:.1f} s"
    assert "Waiting for connections to close" in proc.output() or "Shutting down" in proc.output()


def _stream_tokens(url: str, max_tokens: int) -> tuple[int, bool]:
    """Tokens received (text chunks) and whether the stream ended with [DONE]."""
    body = {"model": NAME, "prompt": "Go", "max_tokens": max_tokens, "ignore_eos": True, "stream": True}
    chunks, complete = 0, False
    try:
        with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60) as response:
            for line in response.iter_lines():
                if line == "data: [DONE]":
                    complete = True
                elif line.startswith("data: ") and json.loads(line[6:]).get("choices"):
                    chunks += 1
    except httpx.HTTPError:
        pass
    return chunks, complete


def _wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_a_directory_without_a_model_exits_with_status_1(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path)
    try:
        code = proc.process.wait(60)
    finally:
        proc.terminate()
    assert code == 1 and "genai_config.json" in proc.output()
