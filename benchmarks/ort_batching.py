"""Does the ONNX server batch, and what does the server cost? A benchmark script (not a timed test).

    PYTHONPATH=. .venv/bin/python benchmarks/ort_batching.py [--model DIR] [--threads 2]

Three measurements on one model, side by side in one run (the machine is shared and noisy: compare the
ratios, repeat a run before trusting a small difference):

1. raw    the onnxruntime-genai loop with no server around it: og.Generator, batch 1, greedy, the prompt
          appended, then generate_next_token until max-tokens tokens (what a script would do);
2. single the server (python -m qwen3ops.ortserver, started here on loopback), one streamed request at a
          time (/v1/completions, the same prompt token ids, greedy, ignore_eos);
3. 4x     the server with 4 concurrent requests (different prompts of the same length);
4. kernel  the server's own decoder runner (the same onnxruntime session and cache) driven directly, with
          no scheduler, HTTP or client: the prompts prefilled one after another, then decoded as one
          batch, for 1 and for 4 prompts. Their ratio is the ceiling the kernels allow for 3 / 2 (prefill
          of the 4 prompts included, attention over a growing past included); the server's ratio is
          printed next to it.

For raw and single, "tokens/s" is generated tokens over the time from sending the prompt to the last
token (prompt processing included), and "decode tokens/s" is (tokens - 1) over the time from the first
to the last token. For 4x, "total tokens/s" is all generated tokens over the wall time from the first
request to the last token. Prompts are random token ids, different in every request. The figures are
printed as a table and, with --json, as one JSON line. Targets (issue 4): 4x total >= 1.8 x single;
single >= 90 % of raw.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qwen3ops.paths import default_store  # noqa: E402


def default_model() -> Path:
    return default_store() / "onnx" / "qwen3-0.6b" / "synthetic-seed0" / "int4"


def prompts(count: int, length: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1000, 100000, length).tolist() for _ in range(count)]


def raw_loop(model_dir: Path, threads: int, prompt: list[int], max_tokens: int, model=None) -> dict[str, float]:
    import onnxruntime_genai as og

    if model is None:
        config = og.Config(str(model_dir))
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {
            "intra_op_num_threads": threads, "inter_op_num_threads": 1}}}}))
        model = og.Model(config)
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False, max_length=len(prompt) + max_tokens + 1)
    started = time.perf_counter()
    generator = og.Generator(model, params)
    generator.append_tokens(np.array(prompt, np.int32))
    generator.generate_next_token()
    first = time.perf_counter()
    for _ in range(max_tokens - 1):
        generator.generate_next_token()
    last = time.perf_counter()
    return {"tokens": max_tokens, "tokens_per_s": max_tokens / (last - started),
            "decode_tokens_per_s": (max_tokens - 1) / (last - first), "ttft_s": first - started}


def kernel_loop(runner, prompts_: list[list[int]], max_tokens: int) -> dict[str, float]:
    """Prefill each prompt in its slot, then decode all rows together, greedy, max_tokens tokens per row."""
    started = time.perf_counter()
    last = np.stack([runner.prefill(slot, p, 0) for slot, p in enumerate(prompts_)])
    past = np.array([len(p) for p in prompts_], np.int64)
    for _ in range(max_tokens - 1):
        last = runner.decode(np.argmax(last, axis=1).astype(np.int64), past)
        past += 1
    wall = time.perf_counter() - started
    return {"tokens": max_tokens * len(prompts_), "tokens_per_s": max_tokens * len(prompts_) / wall}


def stream_request(url: str, model_name: str, prompt: list[int], max_tokens: int) -> dict[str, float]:
    body = {"model": model_name, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
            "stream": True, "stream_options": {"include_usage": True}}
    started = time.perf_counter()
    first = last = 0.0
    tokens = 0
    with httpx.stream("POST", url + "/v1/completions", json=body, timeout=600) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            now = time.perf_counter()
            if data.get("choices"):
                if data["choices"][0].get("text"):
                    first = first or now
                    last = now
            elif data.get("usage"):
                tokens = data["usage"]["completion_tokens"]
    return {"tokens": tokens, "tokens_per_s": tokens / (last - started),
            "decode_tokens_per_s": (tokens - 1) / (last - first) if last > first else 0.0, "ttft_s": first - started,
            "started": started, "last": last}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model_dir: Path, threads: int, port: int, context: int, extra: list[str]) -> subprocess.Popen:
    argv = [sys.executable, "-m", "qwen3ops.ortserver", "--model", str(model_dir), "--host", "127.0.0.1",
            "--port", str(port), "--threads", str(threads), "--max-batch-size", "4", "--context-length",
            str(context), "--log-level", "warning", *extra]
    process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with status {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.kill()
    raise SystemExit("the server did not become ready in 300 s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None,
                        help=f"ONNX model directory (default: {default_model()})")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads (default: %(default)s)")
    parser.add_argument("--prompt-tokens", type=int, default=32, help="prompt length (default: %(default)s)")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens generated per request "
                        "(default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent requests (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of each measurement (default: %(default)s)")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra option for the server (repeatable), e.g. --server-arg=--spinning=false")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    args = parser.parse_args(argv)
    model_dir = (args.model or default_model()).expanduser()
    if not (model_dir / "genai_config.json").is_file():
        print(f"error: {model_dir} is not an ONNX model directory; make it with\n  python -m qwen3ops.onnx_export "
              "--checkpoint <qwen3-0.6b checkpoint> --precision int4", file=sys.stderr)
        return 2
    manifest = json.loads((model_dir / "manifest.json").read_text()) if (model_dir / "manifest.json").is_file() else {}
    name = manifest.get("name", model_dir.name)
    context = args.prompt_tokens + args.max_tokens + 16
    print(f"model {name} ({model_dir}), {args.threads} threads, prompts of {args.prompt_tokens} tokens, "
          f"{args.max_tokens} generated tokens per request, {args.repeats} rounds", flush=True)

    import onnxruntime_genai as og

    config = og.Config(str(model_dir))
    config.overlay(json.dumps({"model": {"decoder": {"session_options": {
        "intra_op_num_threads": args.threads, "inter_op_num_threads": 1}}}}))
    raw_model = og.Model(config)
    raw_loop(model_dir, args.threads, prompts(1, args.prompt_tokens, 99)[0], 8, raw_model)  # warm-up
    from qwen3ops.ortserver.engine import OrtRunner
    from qwen3ops.ortserver.model import ModelPackage

    runner = OrtRunner(ModelPackage.load(model_dir), args.concurrency, context, args.threads)
    kernel_loop(runner, prompts(args.concurrency, args.prompt_tokens, 97), 8)  # warm-up

    port = free_port()
    server = start_server(model_dir, args.threads, port, context, args.server_arg)
    url = f"http://127.0.0.1:{port}"
    raw, single, batched, kernel1, kernel_n = [], [], [], [], []
    try:
        stream_request(url, name, prompts(1, args.prompt_tokens, 98)[0], 8)  # warm-up
        for round_ in range(args.repeats):
            batch = prompts(args.concurrency + 2, args.prompt_tokens, round_)
            # raw and single alternate, on the same prompt, so that drift on a shared machine hits both.
            raw.append(raw_loop(model_dir, args.threads, batch[0], args.max_tokens, raw_model))
            single.append(stream_request(url, name, batch[1], args.max_tokens))
            with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
                started = time.perf_counter()
                results = list(pool.map(lambda p: stream_request(url, name, p, args.max_tokens),
                                        batch[2: 2 + args.concurrency]))
            wall = max(r["last"] for r in results) - started
            total = sum(r["tokens"] for r in results)
            batched.append({"tokens": total, "total_tokens_per_s": total / wall, "wall_s": wall,
                            "mean_ttft_s": statistics.mean(r["ttft_s"] for r in results)})
            kernel1.append(kernel_loop(runner, batch[1:2], args.max_tokens))
            kernel_n.append(kernel_loop(runner, batch[2: 2 + args.concurrency], args.max_tokens))
            print(f"round {round_ + 1}: raw {raw[-1]['tokens_per_s']:.1f} tok/s, "
                  f"single {single[-1]['tokens_per_s']:.1f} tok/s, "
                  f"{args.concurrency}x total {batched[-1]['total_tokens_per_s']:.1f} tok/s; kernel 1: "
                  f"{kernel1[-1]['tokens_per_s']:.1f}, {args.concurrency}: {kernel_n[-1]['tokens_per_s']:.1f}",
                  flush=True)
        batch_metrics = httpx.get(url + "/metrics", timeout=10).text
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    summary = {
        "model": name, "threads": args.threads, "prompt_tokens": args.prompt_tokens, "max_tokens": args.max_tokens,
        "concurrency": args.concurrency, "rounds": args.repeats,
        "raw_tokens_per_s": med(raw, "tokens_per_s"), "raw_decode_tokens_per_s": med(raw, "decode_tokens_per_s"),
        "single_tokens_per_s": med(single, "tokens_per_s"),
        "single_decode_tokens_per_s": med(single, "decode_tokens_per_s"),
        "concurrent_total_tokens_per_s": med(batched, "total_tokens_per_s"),
        "concurrent_mean_ttft_s": med(batched, "mean_ttft_s"),
    }
    summary["kernel_single_tokens_per_s"] = med(kernel1, "tokens_per_s")
    summary["kernel_concurrent_tokens_per_s"] = med(kernel_n, "tokens_per_s")
    summary["kernel_ceiling"] = summary["kernel_concurrent_tokens_per_s"] / summary["kernel_single_tokens_per_s"]
    summary["concurrent_over_single"] = summary["concurrent_total_tokens_per_s"] / summary["single_tokens_per_s"]
    summary["single_over_raw"] = summary["single_tokens_per_s"] / summary["raw_tokens_per_s"]
    summary["single_over_raw_decode"] = summary["single_decode_tokens_per_s"] / summary["raw_decode_tokens_per_s"]
    steps = [line for line in batch_metrics.splitlines() if line.startswith("ortserver_batch_size_")]
    summary["server_batch_size_metrics"] = steps
    print()
    print(f"{'measurement':42} {'median':>10}")
    print(f"{'raw onnxruntime-genai loop, tokens/s':42} {summary['raw_tokens_per_s']:10.1f}"
          f"   (decode only {summary['raw_decode_tokens_per_s']:.1f})")
    print(f"{'server, 1 request, tokens/s':42} {summary['single_tokens_per_s']:10.1f}"
          f"   (decode only {summary['single_decode_tokens_per_s']:.1f})")
    print(f"{f'server, {args.concurrency} concurrent, total tokens/s':42} "
          f"{summary['concurrent_total_tokens_per_s']:10.1f}   (mean TTFT {summary['concurrent_mean_ttft_s']:.2f} s)")
    print(f"{'kernels alone, 1 prompt, tokens/s':42} {summary['kernel_single_tokens_per_s']:10.1f}")
    print(f"{f'kernels alone, {args.concurrency} prompts batched, tokens/s':42} "
          f"{summary['kernel_concurrent_tokens_per_s']:10.1f}")
    print()
    ok_batch = summary["concurrent_over_single"] >= 1.8
    ok_server = summary["single_over_raw"] >= 0.9
    print(f"{args.concurrency} concurrent / 1 request: {summary['concurrent_over_single']:.2f}x "
          f"(target >= 1.8x: {'met' if ok_batch else 'NOT met'}); the kernels alone allow "
          f"{summary['kernel_ceiling']:.2f}x, the server reaches "
          f"{100 * summary['concurrent_over_single'] / summary['kernel_ceiling']:.0f} % of that")
    print(f"server 1 request / raw loop: {100 * summary['single_over_raw']:.0f} % "
          f"(decode only {100 * summary['single_over_raw_decode']:.0f} %; target >= 90 %: "
          f"{'met' if ok_server else 'NOT met'})")
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
