"""The versioned label file and validation of data labels against it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from finetune import taxonomy
from finetune.config import DEFAULT_LABELS
from qwen3ops.errors import UserError

ISSUE_CLASSES = {
    "billing_dispute": "费用争议", "unauthorized_subscription": "未经同意订购", "network_quality": "网络与信号",
    "service_usage": "业务使用故障", "service_handling": "业务办理受阻", "marketing_misrepresentation": "营销宣传不实",
    "staff_service": "服务态度与质量", "privacy_security": "信息安全", "other_complaint": "其他投诉",
    "non_complaint": "非投诉/咨询",
}
COCC_MAP = {"费用问题": "billing_dispute", "不知情定制问题": "unauthorized_subscription", "网络问题": "network_quality",
            "业务使用问题": "service_usage", "业务办理问题": "service_handling",
            "营销活动问题": "marketing_misrepresentation",
            "服务问题": "staff_service", "信息安全问题": "privacy_security"}


def test_shipped_label_file_has_the_ten_classes() -> None:
    labels = taxonomy.load(DEFAULT_LABELS)
    assert labels.id == "complaints-v1"
    assert {c.slug: c.name_zh for c in labels.classes} == ISSUE_CLASSES
    assert all(c.definition and len(c.examples) >= 2 for c in labels.classes)
    assert {k: v for k, v in labels.resolver("cocc").items() if k in COCC_MAP} == COCC_MAP


def test_labels_accepted_as_slug_chinese_name_or_source_label() -> None:
    labels = taxonomy.load(DEFAULT_LABELS)
    check = taxonomy.validate_labels(labels, [("billing_dispute", "f", 1), ("费用争议", "f", 2), ("费用问题", "f", 3),
                                              ("non_complaint", "f", 4)])
    assert check.counts["billing_dispute"] == 3 and check.counts["non_complaint"] == 1
    assert "network_quality" in check.unused and "billing_dispute" not in check.unused


def test_unknown_labels_are_reported_by_name_with_place() -> None:
    labels = taxonomy.load(DEFAULT_LABELS)
    with pytest.raises(UserError) as info:
        taxonomy.validate_labels(labels, [("费用问题", "a.tsv", 1), ("投诉", "a.tsv", 2), ("其它", "a.tsv", 5),
                                          ("投诉", "a.tsv", 9)])
    message = str(info.value)
    assert "'投诉' (2x, first at a.tsv:2)" in message and "'其它' (1x, first at a.tsv:5)" in message


def test_source_restricts_mappings() -> None:
    labels = taxonomy.load(DEFAULT_LABELS)
    with pytest.raises(UserError, match="unknown label source 'nope'"):
        labels.resolver("nope")


def test_cocc_labels_validate(cocc: Path) -> None:
    from finetune import readers

    records = readers.read(cocc / "cocc_train.tsv") + readers.read(cocc / "cocc_dev.tsv")
    labelled = [(r.label, r.file, r.line) for r in records]
    check = taxonomy.validate_labels(taxonomy.load(DEFAULT_LABELS), labelled, "cocc")
    assert check.unused == ["other_complaint", "non_complaint"]
    assert sum(check.counts.values()) == 1634 + 234


@pytest.mark.parametrize(("change", "problem"), [
    (lambda d: d["classes"].append(dict(d["classes"][0])), "duplicate slug"),
    (lambda d: d["classes"][1]["sources"].update(cocc=["费用问题"]), "already maps to billing_dispute"),
    (lambda d: d["classes"][0].pop("definition"), "missing definition"),
    (lambda d: d["classes"][0].update(slug="Billing Dispute"), "lower_snake_case"),
    (lambda d: d.update(version="one"), "version must be an integer"),
])
def test_invalid_label_files_are_rejected(tmp_path: Path, change, problem: str) -> None:
    data = yaml.safe_load(DEFAULT_LABELS.read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "labels.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(UserError, match=problem):
        taxonomy.load(path)
