"""Serve an exported complaint classifier over HTTP: POST /v1/classify.

    python -m finetune.serve --model ~/.cache/qwen3-ops/artifacts/classifiers/tiny-cocc/<id> [--port 8091]

Endpoints (JSON; bound to 127.0.0.1 unless --host says otherwise: put a reverse proxy with
authentication in front of it before exposing it):
  GET  /health        200 {"status": "ok", ...} once the model is loaded, 503 while loading
  GET  /v1/labels     the classes: slug, Chinese name
  POST /v1/classify   one input or a batch:
         {"text": "客户反映..."}                                         a work order or any text
         {"turns": [{"role": "customer", "text": "..."}, ...]}          a call transcript
         {"inputs": [{"text": ...}, {"turns": [...]}, ...]}              a batch
       -> {"label": "billing_dispute", "name_zh": "费用争议", "confidence": 0.93,
           "scores": {slug: probability}, "tokens": 87, "truncated": false, "pii_masked": {"PHONE": 1}}
          (for a batch: {"results": [...]}), plus "model" and "taxonomy".
Inputs go through exactly the preprocessing of training (classifier.json: roles, cleaning, PII
masking, head+tail token budget), so the server never sees more PII than the model did.
`python -m finetune.client` is a client example.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections import Counter
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from finetune.readers import Record, Turn, normalize_role
from qwen3ops.errors import UserError

MAX_BATCH = 64
MAX_BODY = 4 << 20


class Classifier:
    """An exported classifier directory, loaded for inference."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification
        from transformers.utils import logging as hf_logging

        from qwen3ops import tokenizer as tok_mod

        meta_path = path / "classifier.json"
        if not meta_path.is_file():
            raise UserError(f"{path} is not an exported classifier (no classifier.json): run finetune.export")
        if threads:
            torch.set_num_threads(threads)
        hf_logging.set_verbosity_error()
        self.path = path
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        self.labels = [c["slug"] for c in self.meta["labels"]]
        self.names = {c["slug"]: c["name_zh"] for c in self.meta["labels"]}
        self.model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32)
        self.model.eval()
        self.tokenizer = tok_mod.load(str(path))
        self.pad_id = self.model.config.pad_token_id
        self.lock = threading.Lock()

    def _record(self, item: dict[str, Any], index: int) -> Record:
        if not isinstance(item, dict):
            raise UserError(f"input {index}: expected an object with 'text' or 'turns'")
        if isinstance(item.get("turns"), list) and item["turns"]:
            turns = []
            for j, t in enumerate(item["turns"], 1):
                if not isinstance(t, dict) or not isinstance(t.get("text"), str):
                    raise UserError(f"input {index}, turn {j}: expected {{\"role\": ..., \"text\": ...}}")
                turns.append(Turn(normalize_role(str(t.get("role", t.get("speaker", "speaker")))), t["text"]))
            return Record(str(item.get("id", index)), turns, None, "request", index, "transcript")
        if isinstance(item.get("text"), str) and item["text"].strip():
            return Record(str(item.get("id", index)), [Turn("text", item["text"])], None, "request", index, "text")
        raise UserError(f"input {index}: expected a non-empty 'text' or a non-empty list of 'turns'")

    def classify(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from finetune import train
        from finetune.preprocess import render_record

        settings = self.meta["preprocess"]
        examples = []
        for i, item in enumerate(items):
            example, _ = render_record(self._record(item, i), settings, self.tokenizer, Counter())
            examples.append(example)
        ids = train.encode(examples, self.tokenizer, settings["max_tokens"])
        with self.lock:
            probs = train.predict(self.model, ids, self.pad_id, 16, "fp32")
        results = []
        for example, row in zip(examples, probs.tolist(), strict=True):
            best = max(range(len(row)), key=row.__getitem__)
            results.append({"label": self.labels[best], "name_zh": self.names[self.labels[best]],
                            "confidence": round(row[best], 4),
                            "scores": {label: round(p, 4) for label, p in zip(self.labels, row, strict=True)},
                            "tokens": example.tokens, "truncated": example.truncated, "pii_masked": example.pii})
        return results


class _State:
    classifier: Classifier | None = None
    error: str | None = None


def make_handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "qwen3ops-classifier/1"

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

        def do_GET(self) -> None:
            c = state.classifier
            if self.path == "/health":
                if c is None:
                    self._send(HTTPStatus.SERVICE_UNAVAILABLE,
                               {"status": "error" if state.error else "loading", "error": state.error})
                else:
                    self._send(HTTPStatus.OK, {"status": "ok", "model": c.meta["name"], "taxonomy": c.meta["taxonomy"],
                                               "synthetic": c.meta["base_model"]["synthetic"]})
            elif self.path == "/v1/labels":
                if c is None:
                    self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "model not loaded yet"})
                else:
                    self._send(HTTPStatus.OK, {"taxonomy": c.meta["taxonomy"], "labels": c.meta["labels"]})
            else:
                self._send(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}; see /health, /v1/labels, "
                                                           "POST /v1/classify"})

        def do_POST(self) -> None:
            if self.path != "/v1/classify":
                self._send(HTTPStatus.NOT_FOUND, {"error": f"no route POST {self.path}; use /v1/classify"})
                return
            c = state.classifier
            if c is None:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "model not loaded yet"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                self._send(HTTPStatus.BAD_REQUEST, {"error": f"a JSON body of 1 byte to {MAX_BODY} bytes is required"})
                return
            try:
                body = json.loads(self.rfile.read(length).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                self._send(HTTPStatus.BAD_REQUEST, {"error": f"body is not JSON: {exc}"})
                return
            batch = isinstance(body, dict) and "inputs" in body
            items = body["inputs"] if batch else [body]
            if not isinstance(items, list) or not items or len(items) > MAX_BATCH:
                self._send(HTTPStatus.BAD_REQUEST, {"error": f"'inputs' must be a list of 1 to {MAX_BATCH} objects"})
                return
            try:
                results = c.classify(items)
            except UserError as exc:
                self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
                return
            head = {"model": c.meta["name"], "taxonomy": c.meta["taxonomy"]}
            self._send(HTTPStatus.OK, {**head, "results": results} if batch else {**head, **results[0]})

    return Handler


def serve(model: Path, host: str, port: int, threads: int | None = None) -> None:
    state = _State()
    server = ThreadingHTTPServer((host, port), make_handler(state))

    def load() -> None:
        try:
            state.classifier = Classifier(model, threads)
            print(f"classifier {state.classifier.meta['name']} loaded; serving http://{host}:{port}/v1/classify",
                  file=sys.stderr)
        except Exception as exc:  # the server stays up and reports it on /health
            state.error = f"{type(exc).__name__}: {exc}"
            print(f"error: cannot load {model}: {state.error}", file=sys.stderr)

    threading.Thread(target=load, daemon=True).start()
    print(f"listening on http://{host}:{port} (/health is 503 until the model is loaded)", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="an exported classifier directory")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8091, help="port (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    args = parser.parse_args(argv)
    if not (args.model / "classifier.json").is_file():
        print(f"error: {args.model} is not an exported classifier (no classifier.json); "
              "run python -m finetune.pipeline (or finetune.export) first", file=sys.stderr)
        return 2
    serve(args.model, args.host, args.port, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
