"""What the network looked at: occlusion-sensitivity maps for each face, on its 48x48 crop and on the photo.

Occlusion sensitivity (Zeiler & Fergus 2014): a gray square (the face's mean gray level) slides over the crop,
and each pixel's score is how much hiding it lowers the log-probability of the class being explained, averaged
over the positions that cover it. It needs only the model's outputs, so it works with every engine (the default ONNX
twin, Keras, int8, ensembles, dual heads) and batches through ONNX Runtime: 100 views a face with the defaults,
about 0.1 s on 2 cores. Maps are deterministic. Overlays are drawn with OpenCV's colour maps (core install).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np

from fer.analysis.probabilities import classes_of, predict_proba
from fer.data.images import FACE_SIZE
from fer.errors import ImageError
from fer.inference.cropping import DEFAULT_MARGIN, crop_square
from fer.inference.detectors.registry import DEFAULT_DETECTOR
from fer.inference.options import PredictOptions
from fer.inference.predict import PhotoResult, Prediction, inputs, photo_results

# A square about the size of an eye or the mouth at 48x48 (8 px hid too little of a smile to move a confident
# answer: maps were a few stray blocks), moved 4 px at a time: 100 views a face.
PATCH, STRIDE = 12, 4


@dataclass
class Explanation:
    """One face's prediction and, per explained class, its saliency map.

    `maps[c]`: (48, 48) float32 in [0, 1] on the face crop the network saw (`face`), 1 where hiding the pixel
    lowered the probability of class `c` most; `target` is the first explained class (default: the predicted one).
    `box`, `side` and `origin` place the crop in the photo (None for a face crop): photo_map() draws a map there.
    """

    prediction: Prediction
    target: str
    face: np.ndarray
    maps: dict[str, np.ndarray] = field(repr=False)
    origin: tuple[int, int] | None = None  # (x, y) of the crop's top-left corner in the photo
    side: int | None = None  # the crop's side in photo pixels

    @property
    def saliency(self) -> np.ndarray:
        """The map of `target` (the predicted class unless another was asked for)."""
        return self.maps[self.target]

    def overlay(self, target: str | None = None, size: int = 192, alpha: float = 0.45) -> np.ndarray:
        """The face crop (upscaled to `size`) with the map of `target` as a heat map: RGB uint8."""
        face = cv2.resize(self.face, (size, size), interpolation=cv2.INTER_CUBIC)
        heat = cv2.resize(self.maps[target or self.target], (size, size), interpolation=cv2.INTER_CUBIC)
        return heat_overlay(face, heat, alpha)

    def photo_map(self, shape: tuple[int, int], target: str | None = None) -> np.ndarray:
        """The map of `target` placed where the face is in a photo of `shape` (H, W): float32, 0 elsewhere."""
        canvas = np.zeros(shape[:2], np.float32)
        if self.origin is None:
            return np.clip(cv2.resize(self.maps[target or self.target], (shape[1], shape[0])), 0, 1)
        (x0, y0), side = self.origin, self.side
        scaled = cv2.resize(self.maps[target or self.target], (side, side), interpolation=cv2.INTER_CUBIC)
        xa, ya, xb, yb = max(0, x0), max(0, y0), min(shape[1], x0 + side), min(shape[0], y0 + side)
        if xb > xa and yb > ya:
            canvas[ya:yb, xa:xb] = scaled[ya - y0 : yb - y0, xa - x0 : xb - x0]
        return np.clip(canvas, 0, 1)  # cubic resizing overshoots a little


def heat_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """`image` (gray or RGB uint8) blended with `heat` (same H, W; 0..1) in OpenCV's inferno colours: RGB uint8."""
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else np.asarray(image, np.uint8)
    colours = cv2.cvtColor(
        cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB
    )
    weight = (alpha * np.clip(heat, 0, 1))[..., None]  # cold regions keep the photo, hot ones take the colour
    return np.uint8(np.round(rgb * (1 - weight) + colours * weight))


def _positions(patch: int, stride: int) -> list[tuple[int, int]]:
    if not 0 < patch <= FACE_SIZE or not 0 < stride <= patch:
        raise ValueError(f"patch must be in 1..{FACE_SIZE} and stride in 1..patch, got patch={patch}, stride={stride}")
    starts = list(range(0, FACE_SIZE - patch + 1, stride))
    if starts[-1] != FACE_SIZE - patch:
        starts.append(FACE_SIZE - patch)  # the last row and column of pixels are covered too
    return [(y, x) for y in starts for x in starts]


def face_maps(
    model, face: np.ndarray, targets, labels: str | None = None, patch: int = PATCH, stride: int = STRIDE
) -> np.ndarray:
    """(len(targets), 48, 48) float32 maps for one (48, 48) uint8 face: how much hiding each pixel lowers the
    probability of each target class (indices into the model's `labels` head), each scaled to [0, 1]. The
    occluded views go through the network once, whatever the number of targets."""
    positions = _positions(patch, stride)
    face = np.asarray(face, np.uint8)
    views = np.repeat(face[None], len(positions) + 1, axis=0)  # the face itself first
    fill = np.uint8(round(float(face.mean())))
    for k, (y, x) in enumerate(positions, start=1):
        views[k, y : y + patch, x : x + patch] = fill
    probs = predict_proba(model, views, labels=labels, batch_size=len(views))
    targets = np.atleast_1d(targets)
    # In log-probability: a confident answer (p = 0.999) still shows which pixels its confidence rests on, where
    # its probability would barely move. Only what hiding takes away counts: evidence for the class.
    logp = np.log(np.clip(probs[:, targets], 1e-7, 1.0))
    drop = np.maximum(logp[0] - logp[1:], 0.0)
    maps = np.zeros((len(targets), FACE_SIZE, FACE_SIZE), np.float64)
    covered = np.zeros((FACE_SIZE, FACE_SIZE), np.float64)
    for k, (y, x) in enumerate(positions):
        maps[:, y : y + patch, x : x + patch] += drop[k][:, None, None]
        covered[y : y + patch, x : x + patch] += 1
    maps /= covered
    # The stride leaves 4-px steps in the map: a light blur (sigma 1.5 px of 48) shows the regions, not the grid.
    maps = np.stack([cv2.GaussianBlur(m, (0, 0), 1.5) for m in maps])
    top = maps.max(axis=(1, 2), keepdims=True)
    return np.divide(maps, top, out=np.zeros_like(maps), where=top > 0).astype(np.float32)


def occlusion_maps(
    model, faces: np.ndarray, targets, labels: str | None = None, patch: int = PATCH, stride: int = STRIDE
) -> np.ndarray:
    """(N, 48, 48) maps for (N, 48, 48) uint8 faces, face i explained for class index `targets[i]`."""
    return np.stack([face_maps(model, f, [t], labels, patch, stride)[0] for f, t in zip(faces, targets)])


def _targets(target, classes: tuple[str, ...], predicted: str) -> list[str]:
    """The classes to explain: None -> the predicted one; "all"; a class name; a list of names."""
    if target is None:
        return [predicted]
    if target == "all":
        return list(classes)
    names = [target] if isinstance(target, str) else list(target)
    unknown = [n for n in names if n not in classes]
    if unknown or not names:
        raise ValueError(f"target names classes this model does not answer in: {unknown}; its classes: {list(classes)}")
    return names


def explain(
    image,
    model=None,
    *,
    target: str | list[str] | None = None,
    labels: str | None = None,
    prior: str | Mapping[str, float] = "training",
    face_crop: bool | None = None,
    boxes=None,
    detector=DEFAULT_DETECTOR,
    margin: float = DEFAULT_MARGIN,
    channel_order: str = "rgb",
    patch: int = PATCH,
    stride: int = STRIDE,
) -> list[Explanation] | list[list[Explanation]]:
    """What the network looked at, for every face of a photo (or a face crop): one Explanation per face.

    image, model, labels, prior, face_crop, boxes, detector, margin, channel_order: as in predict_emotion (a list
    of images: one list of Explanations each; an unreadable item: an empty list). target: the class whose map is
    drawn: None (each face's predicted emotion), a class name, a list of names, or "all". patch, stride: the
    occluding square's side and step in pixels of the 48x48 crop. Each Explanation has the prediction, the crop,
    `maps` per class, `overlay()` (the crop with its heat map) and `photo_map(shape)` (the map on the photo).

    >>> [(e.prediction.emotion, e.saliency.shape) for e in explain("group.jpg")]   # doctest: +SKIP
    """
    options = PredictOptions.make(
        model,
        labels=labels,
        prior=prior,
        face_crop=face_crop,
        detector=detector,
        margin=margin,
        channel_order=channel_order,
    )
    many, images, boxes = inputs(image, boxes)
    results = []
    for result in photo_results(images, options, boxes):
        if result.faces.error is not None and not many:
            raise ImageError(result.faces.error)
        results.append(explanations(result, options, target, patch, stride))
    return results if many else results[0]


def explanations(
    result: PhotoResult, options: PredictOptions, target=None, patch: int = PATCH, stride: int = STRIDE
) -> list[Explanation]:
    """One Explanation per face of a photo already predicted (its crops, as the network saw them): what explain
    and `python -m fer predict --explain` draw."""
    found = []
    for p, face in zip(result.faces, result.crops):
        names = _targets(target, options.classes, p.emotion)
        index = np.array([options.classes.index(n) for n in names])
        maps = face_maps(options.model, face, index, options.labels, patch, stride)
        # Where the crop sits in the photo, in its own pixels: the very square crop_face cut (a face crop: none).
        origin = side = None
        if p.box is not None:
            x0, y0, side = crop_square(p.box, options.margin)
            origin = (x0, y0)
        found.append(Explanation(p, names[0], face, dict(zip(names, maps)), origin, side))
    return found


def class_saliency(
    model,
    faces: np.ndarray,
    labels: np.ndarray,
    classes: tuple[str, ...],
    per_class: int = 30,
    head: str | None = None,
    seed: int = 0,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{class: (mean face, mean map scaled to 0..1)} over up to `per_class` faces of each true class (a seeded
    sample), each face explained for its true class: where the network finds the evidence for each emotion."""
    rng = np.random.default_rng(seed)
    model_classes = classes_of(model, head)
    out = {}
    for k, name in enumerate(classes):
        if name not in model_classes:
            continue
        index = np.flatnonzero(labels == k)
        if not len(index):
            continue
        chosen = rng.choice(index, min(per_class, len(index)), replace=False)
        mean = np.mean([face_maps(model, faces[i], [model_classes.index(name)], head)[0] for i in chosen], axis=0)
        out[name] = (faces[chosen].mean(axis=0), mean / mean.max() if mean.max() > 0 else mean)  # 0..1 like one map
    return out


CONFUSED_PAIRS = (
    ("fear", "sad"),
    ("sad", "fear"),
    ("angry", "disgust"),
    ("disgust", "angry"),
    ("neutral", "sad"),
    ("sad", "neutral"),
)


def confident_confusions(
    probs: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], pairs=CONFUSED_PAIRS
) -> list[tuple[str, str, int]]:
    """(true, predicted, face index) of the most confident mistake for each (true, predicted) pair that occurs."""
    predicted = probs.argmax(axis=1)
    found = []
    for true, wrong in pairs:
        if true not in classes or wrong not in classes:
            continue
        t, w = classes.index(true), classes.index(wrong)
        index = np.flatnonzero((labels == t) & (predicted == w))
        if len(index):
            found.append((true, wrong, int(index[probs[index, w].argmax()])))
    return found
