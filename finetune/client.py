"""A client example for the classifier endpoint (standard library only: copy it anywhere).

    python -m finetune.client "客户反映本月话费多扣了五十元，要求核实退费"
    python -m finetune.client --file calls.jsonl          # JSONL transcripts or texts, batched
    python -m finetune.client --url http://127.0.0.1:8091 --json "..."

The same request with curl:
    curl -s http://127.0.0.1:8091/v1/classify -H 'Content-Type: application/json' \\
         -d '{"turns": [{"role": "customer", "text": "我没订过视频会员怎么每个月扣我十五块"}]}'
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8091"


def classify(inputs: list[dict[str, Any]], url: str = DEFAULT_URL, timeout: float = 60.0) -> list[dict[str, Any]]:
    """POST a batch to /v1/classify; returns one result per input."""
    body = json.dumps({"inputs": inputs}, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(f"{url.rstrip('/')}/v1/classify", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8"))["results"]
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", errors="replace")
        raise SystemExit(f"error: {url} answered {exc.code}: {detail}") from exc
    except urllib.error.URLError as exc:
        raise SystemExit(f"error: cannot reach {url} ({exc.reason}); is `python -m finetune.serve` running?") from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune.client", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("texts", nargs="*", help="texts to classify")
    parser.add_argument("--file", type=Path, help="a JSONL file of {\"text\"} or {\"turns\"} objects")
    parser.add_argument("--url", default=DEFAULT_URL, help="server address (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the full JSON results")
    args = parser.parse_args(argv)
    inputs: list[dict[str, Any]] = [{"text": t} for t in args.texts]
    if args.file:
        for n, line in enumerate(args.file.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SystemExit(f"error: {args.file}:{n}: not valid JSON ({exc.msg})") from exc
                inputs.append({k: obj[k] for k in ("id", "text", "turns") if k in obj})
    if not inputs:
        parser.error("give texts or --file")
    results = []
    for start in range(0, len(inputs), 64):
        results.extend(classify(inputs[start:start + 64], args.url))
    for item, result in zip(inputs, results, strict=True):
        if args.json:
            print(json.dumps(result, ensure_ascii=False))
        else:
            label = item.get("id") or (item.get("text") or item["turns"][0]["text"])[:30]
            print(f"{result['label']:28} {result['name_zh']:10} {result['confidence']:.2f}  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
