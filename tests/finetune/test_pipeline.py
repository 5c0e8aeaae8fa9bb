"""End to end on the tiny profile: preprocess -> train -> evaluate -> export -> report -> serve; resume."""

from __future__ import annotations

import json
import math
import threading
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from finetune import config, pipeline, synthetic
from qwen3ops import artifacts


def write_calls(path: Path, per_class: int, seed: int) -> Path:
    path.write_text("".join(json.dumps(synthetic.to_json(r), ensure_ascii=False) + "\n"
                            for r in synthetic.generate(per_class, seed=seed)), encoding="utf-8")
    return path


def tiny_config(tmp_path: Path, store: Path, *overrides: str) -> dict:
    data = write_calls(tmp_path / "calls.jsonl", 5, seed=11)
    return config.load(None, [
        "name=e2e", f"data.train={data}", "data.test_fraction=0.2", "data.validation_fraction=0.2",
        "preprocess.max_tokens=64", "model.profile=qwen3-tiny", f"model.store={store}", f"output_dir={tmp_path}/runs",
        "train.batch_size=8", "train.epochs=2", "train.lr=3e-3", "train.threads=2", "export.dtype=float32",
        *overrides])


@pytest.mark.slow
def test_tiny_end_to_end_writes_the_report_and_serves_the_classifier(tmp_path: Path, store: Path) -> None:
    cfg = tiny_config(tmp_path, store, "train.method=lora", "train.lora.r=4", "train.lora.train_embeddings=true")
    result = pipeline.run(cfg, progress=False)
    run = Path(result["run_dir"])

    # 50 calls: 10 test, 8 validation, 32 train = 4 batches of 8 per epoch, 2 epochs
    assert result["synthetic"] and result["steps"] == 8 and result["test"]["n"] == 10
    assert 0.0 <= result["test"]["macro_f1"] <= 1.0 and result["baseline"]["macro_f1"] is not None
    report = (run / "report.md").read_text(encoding="utf-8")
    for section in ("Weights: SYNTHETIC", "## Summary", "## Data", "## Hyper-parameters", "## Training",
                    "## Evaluation on the held-out split", "Confusion matrix", "TF-IDF", "## Hardware and software",
                    "s per optimizer step", "peak RSS"):
        assert section in report, section
    page = (run / "report.html").read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == 3  # curves, confusion (model, baseline) inlined
    for name in ("curves.png", "confusion_model.png", "confusion_baseline.png"):
        assert (run / name).read_bytes()[:4] == b"\x89PNG"
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["step"] for r in records if r["type"] == "train"] == list(range(1, 9))
    assert [r["epoch"] for r in records if r["type"] == "eval"] == [1, 2]
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert len(list((run / "checkpoints").glob("step-*"))) == 2

    exported = Path(result["export"])
    assert artifacts.verify(exported) == []
    meta = json.loads((exported / "classifier.json").read_text(encoding="utf-8"))
    assert meta["base_model"]["synthetic"] and meta["taxonomy"] == "complaints-v1" and len(meta["labels"]) == 10
    assert json.loads((run / "export.json").read_text(encoding="utf-8"))["prediction_agreement"] == 1.0
    assert not any(p.name.startswith("adapter") for p in exported.iterdir())  # merged: no peft needed

    from finetune import serve

    state = serve._State()
    state.classifier = serve.Classifier(exported)
    server = ThreadingHTTPServer(("127.0.0.1", 0), serve.make_handler(state))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{url}/health") as response:
            assert json.loads(response.read())["status"] == "ok"
        from finetune import client

        results = client.classify([{"text": "我从来没订过视频会员，每个月扣我十五块钱，电话13812345678"},
                                   {"turns": [{"role": "customer", "text": "帮我查一下流量"}]}], url)
        assert [r["label"] in meta_slugs(meta) for r in results] == [True, True]
        assert results[0]["pii_masked"] == {"PHONE": 1}
        assert sum(results[1]["scores"].values()) == pytest.approx(1.0, abs=1e-3)
    finally:
        server.shutdown()
        server.server_close()


def meta_slugs(meta: dict) -> set[str]:
    return {c["slug"] for c in meta["labels"]}


@pytest.mark.slow
def test_interrupted_training_resumes_exactly(tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from finetune import preprocess, taxonomy, train
    from qwen3ops import tokenizer as tok_mod
    from qwen3ops.errors import UserError

    cfg = tiny_config(tmp_path, store, "train.method=full", "train.epochs=2", "train.batch_size=4",
                      "preprocess.max_tokens=32", "data.limit=12")
    data = tmp_path / "data"
    dataset = preprocess.build(cfg, tok_mod.load(str(tok_mod.ensure_tokenizer(store)[0])), taxonomy.load(cfg["labels"]))
    preprocess.write(dataset, data)

    steps = 2 * math.ceil(len(dataset.splits["train"]) / 4)  # batches of 4, 2 epochs
    assert steps >= 4
    straight_result = train.train(cfg, data, tmp_path / "straight", progress=False)
    assert straight_result["steps"] == steps
    calls = {"n": 0}
    real_collate = train.collate

    def interrupting_collate(ids, pad_id):
        calls["n"] += 1
        if calls["n"] == steps // 2 + 1:  # inside the second epoch
            raise KeyboardInterrupt
        return real_collate(ids, pad_id)

    monkeypatch.setattr(train, "collate", interrupting_collate)
    with pytest.raises(UserError, match="--resume"):
        train.train(cfg, data, tmp_path / "resumed", progress=False)
    monkeypatch.setattr(train, "collate", real_collate)
    result = train.train(cfg, data, tmp_path / "resumed", resume=True, progress=False)
    assert result["resumed"] and result["steps"] == steps

    def final_weights(run: Path) -> dict:
        latest = sorted((run / "checkpoints").glob("step-*"))[-1]
        return torch.load(latest / "trainable.pt", weights_only=True)

    straight, resumed = final_weights(tmp_path / "straight"), final_weights(tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    assert all(torch.allclose(straight[k], resumed[k], atol=1e-6) for k in straight)


def test_config_overrides_and_errors(tmp_path: Path) -> None:
    from qwen3ops.errors import UserError

    cfg = config.load(config.PACKAGE_DIR / "configs" / "tiny-cocc.yml",
                      ["train.lr=3e-4", "train.lora.target_modules=[q_proj]"])
    assert cfg["train"]["lr"] == pytest.approx(3e-4) and cfg["train"]["lora"]["target_modules"] == ["q_proj"]
    with pytest.raises(UserError, match="unknown key 'lrr'; valid keys: method"):
        config.load(None, ["data.train=x.tsv", "train.lrr=1"])
    with pytest.raises(UserError, match=r"train\.method must be lora or full"):
        config.load(None, ["data.train=x.tsv", "train.method=qlora"])
    with pytest.raises(UserError, match=r"must look like key\.path=value"):
        config.load(None, ["train.lr"])


def test_shipped_configs_load() -> None:
    for path in sorted((config.PACKAGE_DIR / "configs").glob("*.yml")):
        cfg = config.load(path)
        assert cfg["model"]["profile"] in ("qwen3-tiny", "qwen3-0.6b"), path
