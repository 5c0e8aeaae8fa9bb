"""Classification metrics: accuracy, macro-F1, per-class precision/recall/F1, confusion matrix.

Macro averages are taken over the classes that occur in the gold labels of the evaluated split
(a class the split does not contain cannot be recalled, and would only add a meaningless zero);
predictions of other classes still count as errors.
"""

from __future__ import annotations

from typing import Any


def compute(gold: list[str], predicted: list[str], labels: list[str]) -> dict[str, Any]:
    """All figures for one split; `labels` fixes the order of the confusion matrix."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    order = list(labels) + sorted({*gold, *predicted} - set(labels))
    index = {label: i for i, label in enumerate(order)}
    matrix = [[0] * len(order) for _ in order]
    for g, p in zip(gold, predicted, strict=True):
        matrix[index[g]][index[p]] += 1
    per_class: dict[str, dict[str, float]] = {}
    for label in order:
        i = index[label]
        tp = matrix[i][i]
        predicted_n = sum(row[i] for row in matrix)
        support = sum(matrix[i])
        precision = tp / predicted_n if predicted_n else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    present = [label for label in order if per_class[label]["support"] > 0]
    n = len(gold)
    correct = sum(g == p for g, p in zip(gold, predicted, strict=True))
    return {
        "n": n,
        "accuracy": correct / n if n else 0.0,
        "macro_f1": sum(per_class[c]["f1"] for c in present) / len(present) if present else 0.0,
        "macro_precision": sum(per_class[c]["precision"] for c in present) / len(present) if present else 0.0,
        "macro_recall": sum(per_class[c]["recall"] for c in present) / len(present) if present else 0.0,
        "per_class": per_class,
        "labels": order,
        "confusion": matrix,
    }


def confusion_table(result: dict[str, Any]) -> str:
    """The confusion matrix as a Markdown table (rows: gold, columns: predicted)."""
    labels = result["labels"]
    short = [label[:12] for label in labels]
    lines = ["| gold \\ predicted | " + " | ".join(short) + " |", "|---|" + "---:|" * len(labels)]
    for label, row in zip(labels, result["confusion"], strict=True):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def plot_confusion(result: dict[str, Any], path: Any, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, matrix = result["labels"], result["confusion"]
    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    totals = [max(sum(row), 1) for row in matrix]
    shares = [[v / t for v in row] for row, t in zip(matrix, totals, strict=True)]
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                        color="white" if shares[i][j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the gold class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
