"""Benchmark suite: load generation, metrics, resource sampling, roofline and reports.

    python -m benchmarks run --url http://127.0.0.1:8080 --concurrency 1,2,4,8
    python -m benchmarks compare reports/bench-A reports/bench-B
    python -m benchmarks probe          # this host's memory bandwidth and matmul rate
    python -m benchmarks selfcheck      # the load generator's own ceiling and CPU cost
    python -m benchmarks.tune           # measure and choose serving settings (docs/tuning.md)
"""
