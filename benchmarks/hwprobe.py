"""Hardware probe: this host's memory read bandwidth and matrix-multiply rate (the roofline).

CPU inference is bounded by two floors: generating a token reads every weight once (bytes of
weights / read bandwidth), and a prompt token costs about 2 x parameters floating-point operations
(matmul rate). Results are the best of several repeats, on as many threads as the servers use.

    python -m benchmarks.hwprobe [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def probe(threads: int | None = None, size_mib: int = 1024, repeats: int = 5) -> dict[str, Any]:
    import torch

    threads = threads or os.cpu_count() or 1
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        data = torch.ones(size_mib * 1024 * 1024 // 4, dtype=torch.float32)
        data.sum()
        best_read = 0.0
        for _ in range(repeats):
            start = time.perf_counter()
            data.sum()
            best_read = max(best_read, data.numel() * 4 / (time.perf_counter() - start))
        del data
        rates = {}
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            # Start small and grow while one multiply is fast: CPUs without native bf16 take
            # seconds per 2048^2 bf16 product, and the probe must stay quick.
            best, n = 0.0, 256
            while n <= 2048:
                a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
                start = time.perf_counter()
                torch.mm(a, b)
                elapsed = time.perf_counter() - start
                for _ in range(repeats if elapsed < 0.5 else 0):
                    start = time.perf_counter()
                    torch.mm(a, b)
                    best = max(best, 2 * n**3 / (time.perf_counter() - start))
                best = max(best, 2 * n**3 / elapsed)
                if elapsed > 0.5:
                    break
                n *= 2
            rates[name] = best
    finally:
        torch.set_num_threads(previous)
    return {
        "threads": threads,
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "read_bandwidth_bytes_per_s": best_read,
        "matmul_fp32_flops": rates["fp32"],
        "matmul_bf16_flops": rates["bf16"],
        "method": f"torch {torch.__version__}: sum over {size_mib} MiB fp32; square mm up to 2048; best of {repeats}",
    }


def floors(hw: dict[str, Any], model_bytes: int | None, parameters: int | None) -> dict[str, float | None]:
    """Upper bounds implied by the probe: decode tokens/s per step, prompt tokens/s."""
    decode = hw["read_bandwidth_bytes_per_s"] / model_bytes if model_bytes else None
    flops = max(hw["matmul_fp32_flops"], hw["matmul_bf16_flops"])
    prompt = flops / (2 * parameters) if parameters else None
    return {"decode_steps_per_s_ceiling": decode, "prompt_tokens_per_s_ceiling": prompt}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hwprobe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = probe(args.threads)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['cpu_model']} ({result['threads']} threads)")
        print(f"  read bandwidth {result['read_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s")
        print(f"  matmul fp32 {result['matmul_fp32_flops'] / 1e9:.0f} GFLOP/s, "
              f"bf16 {result['matmul_bf16_flops'] / 1e9:.0f} GFLOP/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
