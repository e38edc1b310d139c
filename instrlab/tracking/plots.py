"""Figures for a training run (matplotlib, Agg backend); every function returns a Figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.metrics import precision_recall_curve  # noqa: E402


def _label(name: str) -> str:
    return name.replace("_", " ")


def learning_curves(history: Sequence[Mapping[str, float]]) -> Figure:
    """Train/validation loss and validation macro F1 per epoch."""
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="BCE loss (pos-weighted)", title="Loss")
    ax_loss.legend()
    f1 = [h["val_macro_f1"] for h in history]
    ax_f1.plot(epochs, f1, "o-", color="tab:green")
    if f1:
        best = int(np.argmax(f1))
        ax_f1.axvline(epochs[best], ls=":", color="grey")
        ax_f1.annotate(f"best {f1[best]:.4f}", (epochs[best], f1[best]),
                       textcoords="offset points", xytext=(4, -12))
    ax_f1.set(xlabel="epoch", ylabel="macro F1", title="Validation macro F1")
    for ax in (ax_loss, ax_f1):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def f1_vs_seed(
    f1_by_name: Mapping[str, float], names: Sequence[str], seed_f1: Mapping[str, float]
) -> Figure:
    """Per-instrument F1 of this run beside the seed's (seed bars absent where unknown)."""
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(names) + 2), 4))
    ours = [f1_by_name.get(n, np.nan) for n in names]
    seed = [seed_f1.get(n, np.nan) for n in names]
    ax.bar(x - 0.2, seed, 0.4, label="seed", color="tab:grey")
    bars = ax.bar(x + 0.2, ours, 0.4, label="this run", color="tab:blue")
    ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(x, [_label(n) for n in names], rotation=45, ha="right")
    low = np.nanmin([*ours, *seed, 1.0])
    ax.set_ylim(max(0.0, low - 0.05), 1.02)
    ax.set(ylabel="F1", title="Per-instrument F1: this run vs the seed")
    ax.legend(loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def pr_curves(y_true: np.ndarray, probs: np.ndarray, names: Sequence[str]) -> Figure:
    """One precision-recall curve per instrument."""
    fig, ax = plt.subplots(figsize=(6.5, 5))
    cmap = plt.get_cmap("tab20")
    for c, name in enumerate(names):
        if not np.asarray(y_true)[:, c].any():
            continue
        prec, rec, _ = precision_recall_curve(y_true[:, c], probs[:, c])
        ax.plot(rec, prec, color=cmap(c % 20), label=_label(name), lw=1.2)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall per instrument",
           xlim=(0, 1.01), ylim=(0, 1.01))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(C, C+1) counts: row i = clips holding instrument i; column j < C = clips where j was
    falsely predicted alongside i; last column = clips where i itself was missed."""
    y_true = np.asarray(y_true).astype(bool)
    y_pred = np.asarray(y_pred).astype(bool)
    false_pos = y_pred & ~y_true
    counts = y_true.T.astype(np.int64) @ false_pos.astype(np.int64)
    missed = (y_true & ~y_pred).sum(axis=0)
    return np.concatenate([counts, missed[:, None]], axis=1)


def confusion_view(y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str]) -> Figure:
    """Heatmap: for each true instrument, how often each other one was wrongly predicted
    with it (and, last column, how often it was missed)."""
    counts = confusion_counts(y_true, y_pred)
    n = len(names)
    fig, ax = plt.subplots(figsize=(0.6 * n + 3, 0.5 * n + 2))
    vmax = max(1, int(counts.max()) if counts.size else 0)
    im = ax.imshow(counts, cmap="Reds", vmin=0, vmax=vmax)
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            if counts[i, j]:
                color = "white" if counts[i, j] > 0.6 * vmax else "black"
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                        color=color)
    labels = [_label(x) for x in names]
    ax.set_xticks(range(n + 1), [*labels, "(missed)"], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set(xlabel="falsely predicted", ylabel="true instrument in the clip",
           title="False detections alongside each true instrument")
    fig.colorbar(im, ax=ax, shrink=0.7, label="clips")
    fig.tight_layout()
    return fig


def spectrogram_grid(features: np.ndarray, titles: Sequence[str], ncols: int = 3) -> Figure:
    """A grid of example spectrograms (each (F, T) or (1, F, T)) with a title per panel."""
    n = len(features)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
            continue
        spec = np.asarray(features[k], dtype=np.float32)
        spec = spec.reshape(spec.shape[-2], spec.shape[-1])
        ax.imshow(spec, origin="lower", aspect="auto", cmap="magma")
        ax.set_title(titles[k] if k < len(titles) else "", fontsize=7, wrap=True)
        ax.set(xlabel="frame", ylabel="bin")
    fig.tight_layout()
    return fig


def generalization_chart(report: Mapping[str, Mapping[str, float]], names: Sequence[str]
                         ) -> Figure:
    """Grouped bars: macro F1 and per-instrument F1 on each evaluation source."""
    keys = ["macro_f1", *names]
    sources = list(report)
    x = np.arange(len(keys))
    width = 0.8 / max(1, len(sources))
    fig, ax = plt.subplots(figsize=(max(7, 0.9 * len(keys) + 2), 4.2))
    for i, src in enumerate(sources):
        ax.bar(x - 0.4 + width * (i + 0.5), [report[src].get(k, np.nan) for k in keys], width,
               label=src)
    ax.set_xticks(x, [_label(k) for k in keys], rotation=45, ha="right")
    ax.set(ylabel="F1", ylim=(0, 1.02), title="F1 per evaluation source")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
