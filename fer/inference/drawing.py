"""Drawing predictions onto images: a box per face and its emotion with probability."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from fer.data.classes import EMOTIONS
from fer.data.images import as_array

# One colour per emotion (RGB), so a glance at an annotated group photo tells them apart.
COLORS = {
    "angry": (220, 40, 40),
    "disgust": (120, 160, 30),
    "fear": (150, 60, 200),
    "happy": (250, 200, 0),
    "neutral": (200, 200, 200),
    "sad": (40, 110, 230),
    "surprise": (250, 120, 0),
    "contempt": (140, 90, 60),  # FER+ models' eighth class
}
assert set(EMOTIONS) <= set(COLORS)


def annotate(
    image, predictions, path: str | Path | None = None, channel_order: str = "rgb", landmarks: bool = False
) -> np.ndarray:
    """An RGB copy of `image` with each prediction's box and "emotion 93%" label drawn.

    `predictions` are fer.inference.predict.Prediction objects that carry a box (from a photo).
    `landmarks`: also each face's mesh points (Predictions made with landmarks=True) and its head pose.
    With `path`, the result is also saved (format from the suffix; a JPEG at quality 95, where the labels stay
    sharp) and parent folders made.
    """
    canvas = as_array(image, channel_order)
    canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2RGB) if canvas.ndim == 2 else canvas.copy()
    scale = max(canvas.shape[:2]) / 640  # text and lines grow with the image
    thickness = max(1, round(2 * scale))
    for p in predictions:
        if landmarks and p.landmarks is not None:
            _draw_mesh(canvas, p, COLORS[p.emotion], thickness)
        if p.box is None:
            continue
        x, y, w, h = p.box
        color = COLORS[p.emotion]
        cv2.rectangle(canvas, (x, y), (x + w, y + h), color, thickness)
        label = f"{p.emotion} {p.probability:.0%}"
        font_scale = 0.5 * max(scale, 0.6)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        top = y - th - base - 2 if y - th - base - 2 >= 0 else y + h  # above the box, or below at the top edge
        cv2.rectangle(canvas, (x, top), (x + tw + 4, top + th + base + 2), color, -1)
        cv2.putText(canvas, label, (x + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), thickness)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        jpeg = path.suffix.lower() in (".jpg", ".jpeg")
        Image.fromarray(canvas).save(path, **({"quality": 95} if jpeg else {}))
    return canvas


def _draw_mesh(canvas: np.ndarray, p, color, thickness: int) -> None:
    """The mesh's points as dots and, under its box, "yaw 12 pitch -3 roll 5" (degrees)."""
    radius = max(1, thickness // 2)
    for x, y in np.round(p.landmarks[:, :2]).astype(int):
        cv2.circle(canvas, (int(x), int(y)), radius, color, -1, lineType=cv2.LINE_AA)
    if p.box is not None and p.pose is not None:
        x, y, w, h = p.box
        text = "yaw {:.0f} pitch {:.0f} roll {:.0f}".format(*p.pose)
        font_scale = 0.4 * max(max(canvas.shape[:2]) / 640, 0.6)
        cv2.putText(canvas, text, (x, y + h + int(18 * font_scale / 0.4)), cv2.FONT_HERSHEY_SIMPLEX, font_scale, color,
                    max(1, thickness - 1), cv2.LINE_AA)  # fmt: skip
