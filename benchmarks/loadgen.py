"""The load generator: closed-loop concurrency or open-loop (Poisson or constant) arrivals, streamed.

Every request is streamed so that the first token and every later token is timed. Warm-up
requests are sent before each level and left out of its records. A level ends when its request
count is reached or its duration is up (requests in flight are then allowed to finish).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from tqdm import tqdm

from benchmarks.metrics import tpot
from benchmarks.workload import Request
from qwen3ops.client import Endpoint, StreamResult, chat_stream


@dataclass(frozen=True)
class Level:
    """One load level: a fixed concurrency (closed loop) or a request rate (open loop)."""

    concurrency: int | None = None
    rate: float | None = None
    arrival: str = "poisson"  # or "constant"

    @property
    def label(self) -> str:
        return f"c{self.concurrency}" if self.concurrency else f"r{self.rate:g}"


def record(result: StreamResult, request: Request, level: Level, t0: float) -> dict[str, Any]:
    output_tokens = result.completion_tokens if result.ok else None
    ttft = result.ttft
    return {
        "level": level.label,
        "concurrency": level.concurrency,
        "rate": level.rate,
        "index": request.index,
        "ok": result.ok,
        "error": result.error,
        "status": result.status,
        "start": result.start - t0,
        "end": result.end - t0,
        "latency": result.latency,
        "ttft": ttft,
        "tpot": tpot(result.latency, ttft, output_tokens) if result.ok else None,
        "itl": [b - a for a, b in itertools.pairwise(result.chunk_times)],
        "prompt_tokens": result.prompt_tokens or request.prompt_tokens,
        "output_tokens": output_tokens,
        "expected_output_tokens": request.max_tokens,
        "chunks": len(result.chunk_times),
        "model": result.model,
    }


async def _send(client: httpx.AsyncClient, ep: Endpoint, request: Request, ignore_eos: bool,
                temperature: float = 0.0) -> StreamResult:
    return await chat_stream(client, ep, request.messages, max_tokens=request.max_tokens, ignore_eos=ignore_eos,
                             temperature=temperature, seed=request.index)


def warmup_request(request: Request, i: int) -> Request:
    """A warm-up copy of `request` whose text starts differently: the server's prompt cache then holds
    nothing that a measured request could reuse (the measured loop sends `request` itself later)."""
    messages = [dict(m) for m in request.messages]
    messages[0]["content"] = f"[warm-up {i}] " + messages[0]["content"]
    return dataclasses.replace(request, messages=messages)


async def run_level(ep: Endpoint | Sequence[Endpoint], requests: list[Request], level: Level, *,
                    max_requests: int, max_duration: float, warmup: int = 1, ignore_eos: bool = True,
                    timeout: float = 600.0, seed: int = 0, progress: bool = True, temperature: float = 0.0,
                    on_start: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Run one level and return its per-request records (warm-up excluded).

    Several endpoints (instances without a load balancer in front) share the load round-robin:
    closed-loop client k always talks to endpoint k mod n, open-loop request i goes to i mod n;
    each endpoint gets the warm-up requests."""
    endpoints = [ep] if isinstance(ep, Endpoint) else list(ep)
    width = max(level.concurrency or 0, 64)
    limits = httpx.Limits(max_connections=width, max_keepalive_connections=width)
    timeouts = httpx.Timeout(timeout, connect=10.0)
    records: list[dict[str, Any]] = []
    async with httpx.AsyncClient(limits=limits, timeout=timeouts) as client:
        for target in endpoints:
            for i in range(warmup):
                await _send(client, target, warmup_request(requests[-1 - i % len(requests)], i), ignore_eos,
                            temperature)
        source = itertools.cycle(requests)
        if on_start:
            on_start()
        t0 = time.perf_counter()
        deadline = t0 + max_duration
        bar = tqdm(total=max_requests, desc=f"level {level.label}", unit="req", disable=not progress, leave=False)

        async def one(request: Request, target: Endpoint) -> None:
            result = await _send(client, target, request, ignore_eos, temperature)
            records.append(record(result, request, level, t0))
            bar.update(1)

        sent = 0
        if level.concurrency:
            lock = asyncio.Lock()

            async def worker(target: Endpoint) -> None:
                nonlocal sent
                while True:
                    async with lock:
                        if sent >= max_requests or time.perf_counter() >= deadline:
                            return
                        sent += 1
                        request = next(source)
                    await one(request, target)

            await asyncio.gather(*(worker(endpoints[k % len(endpoints)]) for k in range(level.concurrency)))
        else:
            assert level.rate and level.rate > 0
            rng = random.Random(seed)
            tasks = []
            next_at = t0
            while sent < max_requests and next_at < deadline:
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(next(source), endpoints[sent % len(endpoints)])))
                sent += 1
                gap = rng.expovariate(level.rate) if level.arrival == "poisson" else 1.0 / level.rate
                next_at += gap
            await asyncio.gather(*tasks)
        bar.close()
    records.sort(key=lambda r: r["start"])
    return records
