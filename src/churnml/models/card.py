"""What a training run shows a reviewer: evaluation plots, SHAP summary and a model card."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import shap
from jinja2 import Template
from sklearn.metrics import precision_recall_curve, roc_curve

from churnml.data.contract import BOOK
from churnml.features.catalogue import Feature
from churnml.models.train import TargetResult

matplotlib.use("Agg")

SHOWN_METRICS = (
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "ece",
    "lift_top10",
    "arr_captured_top10",
)


def _curves(ax: plt.Axes, result: TargetResult, kind: str) -> None:
    y = result.test.y.to_numpy()
    for name in result.metrics:
        p = result.test[f"p_{name}"].to_numpy()
        if kind == "roc":
            fpr, tpr, _ = roc_curve(y, p)
            ax.plot(fpr, tpr, label=f"{name} ({result.metrics[name]['all']['roc_auc']:.3f})")
            ax.set(xlabel="false positive rate", ylabel="true positive rate")
        elif kind == "pr":
            prec, rec, _ = precision_recall_curve(y, p)
            ax.plot(rec, prec, label=f"{name} ({result.metrics[name]['all']['pr_auc']:.3f})")
            ax.set(xlabel="recall", ylabel="precision")
        elif kind == "calibration":
            bins = pd.qcut(pd.Series(p).rank(method="first"), min(10, len(p)), labels=False)
            frame = pd.DataFrame({"p": p, "y": y, "bin": bins}).groupby("bin").mean()
            ax.plot(frame.p, frame.y, marker="o", label=name)
            ax.set(xlabel="predicted probability", ylabel="observed rate")
        else:  # cumulative gains of ARR
            order = np.argsort(-p, kind="stable")
            gained = np.cumsum((result.test.arr.to_numpy() * y)[order])
            share = np.arange(1, len(p) + 1) / len(p)
            ax.plot(share, gained / max(gained[-1], 1e-9), label=name)
            ax.set(xlabel="share of accounts contacted (by risk)", ylabel="share of ARR captured")
    if kind == "calibration":
        top = float(result.test.filter(like="p_").max().max())
        ax.plot([0, top], [0, top], color="grey", linestyle=":")
    ax.legend(fontsize=7)


def plots(result: TargetResult, folder: Path) -> list[Path]:
    """ROC, precision-recall, calibration and ARR-gains plots of every model on the test rows."""
    paths = []
    for kind in ("roc", "pr", "calibration", "gains"):
        fig, ax = plt.subplots(figsize=(5, 4))
        _curves(ax, result, kind)
        ax.set_title(f"{result.name}: {kind} (test rows)")
        path = folder / f"{result.name}_{kind}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def shap_summary(result: TargetResult, folder: Path, rows: int = 2000) -> Path:
    """SHAP beeswarm of the test rows (exact TreeSHAP from LightGBM)."""
    df = result.model.frame(result.test_rows.head(rows))
    contrib = result.model.contributions(df)[:, :-1]
    shown = df.apply(lambda c: c.cat.codes.where(c.notna()) if c.dtype == "category" else c)
    shap.summary_plot(contrib, shown, show=False, max_display=20, plot_size=(8, 7))
    plt.gcf().suptitle(f"{result.name}: drivers on test rows (SHAP, log-odds)")
    path = folder / f"{result.name}_shap_summary.png"
    plt.savefig(path, dpi=110, bbox_inches="tight")
    plt.close("all")
    return path


_CARD = Template((Path(__file__).parent / "model_card.md.j2").read_text(encoding="utf-8"))


def model_card(result: TargetResult, horizon: int, catalogue: dict[str, Feature]) -> str:
    segments = [s for s in result.metrics["churnml"] if s != BOOK]
    top = result.importance[BOOK].head(10).to_dict()
    return _CARD.render(r=result, horizon=horizon, metrics=SHOWN_METRICS, segments=segments,
                        top=top, catalogue=catalogue, book=BOOK)  # fmt: skip
