"""Metric computation against figures worked out by hand."""

from __future__ import annotations

import pytest

from finetune import metrics


def test_hand_computed_example() -> None:
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    r = metrics.compute(gold, pred, ["a", "b", "c"])
    assert r["accuracy"] == pytest.approx(4 / 6)
    # a: P=2/2 R=2/3 F1=0.8; b: P=1/2 R=1/2 F1=0.5; c: P=1/2 R=1/1 F1=2/3
    assert r["per_class"]["a"]["f1"] == pytest.approx(0.8)
    assert r["per_class"]["b"]["precision"] == pytest.approx(0.5)
    assert r["per_class"]["c"]["recall"] == pytest.approx(1.0)
    assert r["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert r["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_agrees_with_scikit_learn() -> None:
    from sklearn.metrics import accuracy_score, f1_score

    gold = list("aabbbccccd")
    pred = list("abbbcccdda")
    r = metrics.compute(gold, pred, list("abcd"))
    assert r["macro_f1"] == pytest.approx(f1_score(gold, pred, average="macro"))
    assert r["accuracy"] == pytest.approx(accuracy_score(gold, pred))


def test_absent_classes_do_not_dilute_macro_average_but_wrong_predictions_count() -> None:
    r = metrics.compute(["a", "b"], ["a", "z"], ["a", "b", "c"])
    assert r["labels"] == ["a", "b", "c", "z"]
    assert r["macro_f1"] == pytest.approx(0.5)  # a: 1.0, b: 0.0; c and z have no gold examples
    assert r["per_class"]["z"]["precision"] == 0.0


def test_confusion_table_and_plot(tmp_path) -> None:
    r = metrics.compute(["a", "b"], ["a", "a"], ["a", "b"])
    table = metrics.confusion_table(r)
    assert "| a | 1 | 0 |" in table and "| b | 1 | 0 |" in table
    metrics.plot_confusion(r, tmp_path / "c.png", "t")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
