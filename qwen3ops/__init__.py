"""qwen3-ops: provision, serve, benchmark, tune and fine-tune Qwen3 small models on CPUs."""

__version__ = "0.1.0"
