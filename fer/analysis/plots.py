"""Figures for the notebooks: each function returns a matplotlib Figure; `save` writes it as PNG."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from fer.data.classes import EMOTIONS, FERPLUS_CLASSES
from fer.data.loading import FaceSet


def save(fig: plt.Figure, output_dir: str | Path, name: str) -> Path:
    """Write `fig` to output_dir/name.png (folder created) and return the path.

    Written to a temporary file and renamed, so two processes saving the same figure never leave half a PNG.
    """
    path = Path(output_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def class_distribution(table: pd.DataFrame) -> plt.Figure:
    """Bar chart of counts per emotion for each split column of `fer.class_distribution`."""
    splits = [c for c in table.columns if not str(c).endswith("_%")]
    long = table[splits].reset_index().melt(id_vars="emotion", var_name="split", value_name="images")
    fig, ax = plt.subplots(figsize=(8, 4))
    sns.barplot(long, x="emotion", y="images", hue="split", ax=ax)
    for container in ax.containers:
        ax.bar_label(container, fontsize=7)
    ax.set_title("Images per emotion")
    return fig


def image_grid(images, titles=None, ncols: int = 8, size: float = 1.3, suptitle: str | None = None) -> plt.Figure:
    """Gray images in a grid, with optional per-image titles."""
    n = max(len(images), 1)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * 1.15), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, image in enumerate(images):
        ax = axes.flat[i]
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        if titles is not None:
            ax.set_title(titles[i], fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def samples_per_emotion(faces: FaceSet, n: int = 8, seed: int = 0) -> plt.Figure:
    """One row of `n` random faces per emotion."""
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(EMOTIONS), n, figsize=(n * 1.1, len(EMOTIONS) * 1.2), squeeze=False)
    for row, emotion in enumerate(EMOTIONS):
        index = np.flatnonzero(faces.labels == row)
        chosen = rng.choice(index, size=min(n, len(index)), replace=False) if len(index) else []
        for col in range(n):
            ax = axes[row, col]
            ax.axis("off")
            if col < len(chosen):
                ax.imshow(faces.images[chosen[col]], cmap="gray", vmin=0, vmax=255)
        axes[row, 0].set_title(emotion, fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def mean_faces(faces: FaceSet) -> plt.Figure:
    """The pixel-wise mean face of each emotion."""
    means, titles = [], []
    for i, emotion in enumerate(EMOTIONS):
        members = faces.images[faces.labels == i]
        means.append(members.mean(axis=0) if len(members) else np.zeros(faces.images.shape[1:]))
        titles.append(f"{emotion} (n={len(members)})")
    return image_grid(means, titles, ncols=len(EMOTIONS), size=1.6, suptitle="Mean face per emotion")


def intensity_histograms(faces: FaceSet) -> plt.Figure:
    """Pixel-intensity distribution per emotion (density, 64 bins)."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, emotion in enumerate(EMOTIONS):
        members = faces.images[faces.labels == i]
        if len(members):
            hist, edges = np.histogram(members, bins=64, range=(0, 256), density=True)
            ax.plot(edges[:-1], hist, label=emotion)
    ax.set_xlabel("pixel intensity")
    ax.set_ylabel("density")
    ax.set_title("Pixel intensities per emotion")
    ax.legend(fontsize=8)
    return fig


def learning_curves(history: pd.DataFrame) -> plt.Figure:
    """Loss and accuracy per epoch, train vs validation (a dual-head run: each head's accuracy)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    epochs = history["epoch"] + 1
    heads = [h for h in ("ferplus", "fer2013") if f"{h}_accuracy" in history]
    for ax, metric in zip(axes, ("loss", "accuracy")):
        names = [f"{h}_{metric}" for h in heads] if metric == "accuracy" and heads else [metric]
        for name in names:
            prefix = f"{name.removesuffix('_' + metric)} " if name != metric else ""
            ax.plot(epochs, history[name], marker=".", label=f"{prefix}train")
            if f"val_{name}" in history:
                ax.plot(epochs, history[f"val_{name}"], marker=".", label=f"{prefix}validation")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    fig.tight_layout()
    return fig


def confusion_heatmap(confusion: pd.DataFrame, normalized: bool = False) -> plt.Figure:
    """Seaborn heatmap of a confusion matrix (rows true, columns predicted)."""
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    sns.heatmap(
        confusion,
        annot=True,
        fmt=".2f" if normalized else "d",
        cmap="Blues",
        cbar=False,
        ax=ax,
        vmin=0,
        vmax=1 if normalized else None,
    )
    ax.set_title("Confusion matrix" + (" (row-normalised: diagonal = recall)" if normalized else " (counts)"))
    return fig


def reliability_diagram(calibration: pd.DataFrame, ece: float) -> plt.Figure:
    """Accuracy vs confidence per bin (from fer.analysis.evaluation.calibration_table), with the ECE."""
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    centres = (calibration["bin_low"] + calibration["bin_high"]) / 2
    width = calibration["bin_high"] - calibration["bin_low"]
    ax.bar(centres, calibration["accuracy"].fillna(0), width=width, edgecolor="k", alpha=0.7, label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability diagram (ECE = {ece:.3f})")
    ax.legend(loc="upper left")
    hist.bar(centres, calibration["count"], width=width, edgecolor="k", color="gray")
    hist.set_xlabel("confidence")
    hist.set_ylabel("faces")
    fig.tight_layout()
    return fig


def confident_mistakes(
    images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, n: int = 16, classes=EMOTIONS
):
    """Grid of the misclassified faces the model was most sure about; returns (Figure, table).

    `classes` names the label indices (EMOTIONS, or FER+'s eight)."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    order = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:n]
    table = pd.DataFrame(
        {
            "index": order,
            "true": [classes[labels[i]] for i in order],
            "predicted": [classes[predicted[i]] for i in order],
            "confidence": probabilities[order, predicted[order]].round(3),
        }
    )
    titles = [f"{t} -> {p}\n{c:.2f}" for t, p, c in zip(table["true"], table["predicted"], table["confidence"])]
    fig = image_grid(images[order], titles, ncols=8, suptitle="Most confident mistakes (true -> predicted)")
    return fig, table


def compare_runs(runs: pd.DataFrame, metric: str = "accuracy") -> plt.Figure:
    """Horizontal bars of `metric` per run (failed runs shown as 0 and marked)."""
    runs = runs.copy()
    runs[metric] = pd.to_numeric(runs.get(metric), errors="coerce")
    fig, ax = plt.subplots(figsize=(8, 0.45 * max(len(runs), 2) + 1))
    colors = ["tab:red" if s != "ok" else "tab:blue" for s in runs["status"]]
    ax.barh(runs["run_id"], runs[metric].fillna(0), color=colors)
    for y, (value, status) in enumerate(zip(runs[metric], runs["status"])):
        ax.text(0 if pd.isna(value) else value, y, " failed" if status != "ok" else f" {value:.3f}", va="center")
    ax.set_xlabel(metric)
    ax.set_title(f"Runs compared by {metric}")
    ax.invert_yaxis()
    fig.tight_layout()
    return fig


def accuracy_vs_hours(runs: pd.DataFrame, hours: str = "hours_alone") -> plt.Figure:
    """Validation (and, where present, test) accuracy of each run against its training hours.

    `runs` is fer.pipeline.summarize_runs' table: one point per run, labelled with its model.
    `hours`: "hours_alone" (the run's cost with the machine to itself) or "hours" (as measured).
    """
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(runs[hours], runs["val_accuracy"], color="tab:blue", label="validation (held out of train)")
    if runs.get("test_accuracy") is not None and runs["test_accuracy"].notna().any():
        ax.scatter(runs[hours], runs["test_accuracy"], color="tab:orange", marker="s", label="PublicTest")
    for _, row in runs.iterrows():
        ax.annotate(f" {row['model']}, {row['epochs']} ep", (row[hours], row["val_accuracy"]), fontsize=8)
    ax.set_xlabel("training hours, 2-core CPU" + (" (epochs x fastest epoch)" if hours == "hours_alone" else ""))
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy against training time")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def emotions_over_time(frames: pd.DataFrame, smooth: int = 1) -> plt.Figure:
    """Mean probability of each emotion over the faces of each frame, against time.

    `frames` is the table of fer.inference.video.analyze_video; `smooth` > 1 applies a centred
    rolling mean over that many processed frames.
    """
    faces = frames[frames["face"] >= 0]
    classes = [c for c in FERPLUS_CLASSES if c in frames.columns]  # FER+'s eight or FER-2013's seven
    per_frame = faces.groupby("time_s")[classes].mean()
    if smooth > 1:
        per_frame = per_frame.rolling(smooth, center=True, min_periods=1).mean()
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for emotion in classes:
        ax.plot(per_frame.index, per_frame[emotion], label=emotion)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.set_title("Emotions over time (mean over faces)")
    ax.legend(ncol=len(classes), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    fig.tight_layout()
    return fig


def label_agreement(table: pd.DataFrame) -> plt.Figure:
    """Heatmap of FER-2013 label (rows) x FER+ majority (columns), each row as shares of its faces."""
    shares = table.div(table.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)
    fig, ax = plt.subplots(figsize=(8, 4.8))
    sns.heatmap(shares, annot=True, fmt=".2f", cmap="Blues", cbar=False, vmin=0, vmax=1, ax=ax)
    ax.set_title("Where each FER-2013 label goes under the FER+ crowd majority (row shares)")
    return fig


def vote_entropy_by_label(entropy: np.ndarray, labels: np.ndarray, classes) -> plt.Figure:
    """Box plot of per-face vote entropy (bits) grouped by a label: how much the crowd disagrees per class."""
    frame = pd.DataFrame({"label": [classes[i] for i in labels], "vote entropy (bits)": entropy})
    fig, ax = plt.subplots(figsize=(7, 3.5))
    sns.boxplot(frame, x="label", y="vote entropy (bits)", order=list(classes), ax=ax, color="#9ecae1")
    ax.set_title("Crowd disagreement per FER-2013 label (0 = unanimous)")
    return fig


def saliency_maps(
    faces: list[np.ndarray], maps: list[np.ndarray], titles: list[str], ncols: int = 4, size: float = 2.2
) -> plt.Figure:
    """Faces in gray with their saliency maps (0..1) over them in inferno: fer.explain's maps, or their means."""
    nrows = max(1, -(-len(faces) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, face, heat, title in zip(axes.ravel(), faces, maps, titles):
        ax.imshow(face, cmap="gray", vmin=0, vmax=255)
        ax.imshow(heat, cmap="inferno", alpha=0.5, vmin=0, vmax=1, interpolation="bicubic")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
