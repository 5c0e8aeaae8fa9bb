"""Prometheus metrics of one server process (its own registry, served at /metrics).

Queue depth (`ortserver_requests_waiting`) is the honest autoscaling signal on CPU; the batch-size
histogram shows whether concurrent requests really share decode steps.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0)


class Metrics:
    def __init__(self, max_batch_size: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.waiting = Gauge("ortserver_requests_waiting", "Requests queued for a batch slot (queue depth)",
                             registry=r)
        self.running = Gauge("ortserver_requests_running", "Requests holding a batch slot (prefill or decode)",
                             registry=r)
        self.batch_size = Histogram("ortserver_batch_size", "Sequences decoded together per decode step",
                                    buckets=tuple(range(1, max_batch_size + 1)), registry=r)
        self.batch_size_current = Gauge("ortserver_batch_size_current", "Sequences in the latest decode step",
                                        registry=r)
        self.slots = Gauge("ortserver_batch_slots", "Batch slots (the maximum batch size)", registry=r)
        self.slots.set(max_batch_size)
        self.prompt_tokens = Counter("ortserver_prompt_tokens", "Prompt tokens processed", registry=r)
        self.generated_tokens = Counter("ortserver_generated_tokens", "Tokens generated", registry=r)
        self.decode_steps = Counter("ortserver_decode_steps", "Batched decode steps run", registry=r)
        self.ttft = Histogram("ortserver_time_to_first_token_seconds",
                              "Time from request arrival to its first generated token", buckets=_TTFT_BUCKETS,
                              registry=r)
        self.tpot = Histogram("ortserver_time_per_output_token_seconds",
                              "Time between consecutive generated tokens of a request",
                              buckets=_LATENCY_BUCKETS, registry=r)
        self.duration = Histogram("ortserver_request_duration_seconds",
                                  "Time from request arrival to its last token", buckets=_DURATION_BUCKETS,
                                  registry=r)
        self.finished = Counter("ortserver_requests_finished", "Generations finished, by reason",
                                ["reason"], registry=r)
        self.rejected = Counter("ortserver_requests_rejected",
                                "Requests refused with 503 (queue_full, draining, loading)", ["reason"],
                                registry=r)
        self.errors = Counter("ortserver_errors", "Errors answered, by kind (HTTP 4xx/5xx class and engine)",
                              ["kind"], registry=r)
        self.ready = Gauge("ortserver_ready", "1 when the model is loaded and warmed and not draining",
                           registry=r)
        self.info = Gauge("ortserver_model_info", "The served model (value 1)",
                          ["model", "precision", "synthetic"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
