"""Model cards: Markdown rendered from a template file per card kind (templates/) and tables by pandas."""

from __future__ import annotations

from pathlib import Path
from string import Template

import pandas as pd

TEMPLATES = Path(__file__).with_name("templates")


def render(kind: str, **fields) -> str:
    """templates/<kind>_card.md with its $fields filled in (a field the template names but `fields` lacks: KeyError)."""
    return Template((TEMPLATES / f"{kind}_card.md").read_text()).substitute(fields)


def markdown_table(frame: pd.DataFrame) -> str:
    """A table as Markdown (pandas' to_markdown): floats to 3 decimals, whole numbers as they are."""
    return frame.astype(object).to_markdown(floatfmt=".3f")


def per_class_table(evaluation) -> str:
    """An evaluation's per-class precision, recall, F1 and support as Markdown."""
    frame = evaluation.per_class.round(3)
    frame["support"] = frame["support"].astype(int)
    return markdown_table(frame)


def results_rows(plain, tta, tta_scheme: str, tta_label: str = "with test-time augmentation") -> str:
    """The card's accuracy / macro-F1 rows: plain, with TTA, and both without the faces that copy train."""
    rows = [
        f"| plain | **{plain.accuracy:.2%}** | {plain.macro_f1:.3f} |",
        f"| {tta_label} ({tta_scheme}) | **{tta.accuracy:.2%}** | {tta.macro_f1:.3f} |",
    ]
    if plain.deduplicated is not None:
        removed = plain.n - plain.deduplicated.n
        rows += [
            f"| plain, without the {removed} faces that copy training images | {plain.deduplicated.accuracy:.2%} | "
            f"{plain.deduplicated.macro_f1:.3f} |",
            f"| with TTA, without those faces | {tta.deduplicated.accuracy:.2%} | {tta.deduplicated.macro_f1:.3f} |",
        ]
    return "\n".join(rows)


def percent(value) -> str:
    return "" if value is None else f"{value:.2%}"
