"""Performance tuning: a measured search over quantization and engine settings, applied to the inventory.

    python -m benchmarks.tune --profile qwen3-0.6b --workload callcentre-zh \\
        --slo-ttft 4 --slo-tpot 0.25 --memory-limit 6G --inventory inventories/local --host localhost
    python -m benchmarks.tune.compare --profile qwen3-0.6b --tuned inventories/local/host_vars/localhost/tuned.yml
    python -m benchmarks.tune.report reports/tune/qwen3-0.6b reports/tune/qwen3-1.7b --out docs/performance-report.md

Modules, one job each:

- `space`       the settings of one candidate server, the search dimensions, engine command lines;
- `search`      coordinate descent with successive halving over the dimensions (no full grid);
- `cache`       every measurement on disk, keyed by host, engine, model artifact, settings, workload,
                load level, chunk and tool version: a re-run with nothing changed measures nothing;
- `fingerprint` the host, engine and artifact identities that key the cache;
- `models`      the model artifacts a search needs (GGUF quantizations, ONNX exports) and their fidelity;
- `servers`     real candidate servers (llama-server, the ONNX server) started on loopback;
- `measure`     one measurement: a server, a load level, the load generator, resource sampling;
- `inventory`   the chosen settings as role variables in `inventories/<env>/host_vars/<host>/tuned.yml`;
- `compare`     the before/after benchmark and the batching sweep, in one run;
- `report`      docs/performance-report.md from the recorded outputs (never typed figures).
"""

# Bump when the way a measurement is made changes (load generation, aggregation, what is recorded):
# measurements cached under another version are not reused.
MEASUREMENT_VERSION = 1
