"""How faces are found and answered: one frozen PredictOptions, built once from a call's keyword arguments."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fer.analysis.probabilities import adjust, classes_of, predict_proba, prior_weights, training_prior
from fer.data.images import FACE_SIZE, to_face
from fer.inference.cropping import DEFAULT_MARGIN, crop_face
from fer.inference.detectors.base import Face
from fer.inference.detectors.registry import DEFAULT_DETECTOR, DETECTORS, detector_info
from fer.inference.faces import DETECT_MAX_SIDE, detect_faces
from fer.inference.models import resolve_model


@dataclass(frozen=True)
class PredictOptions:
    """Everything between an image and its Predictions, checked and computed once, then passed down unchanged.

    Classification: the resolved `model`, the head (`labels`) and its `classes`, the prior's per-class `weights`
    (None: as the model learned), `tta`, `batch_size`. Detection: `face_crop`, `detector`, `margin`, `align`,
    `close_ups` (a photo without a face retried as a close-up, and a small face-shaped one taken whole; off for
    video frames), `max_side` (photos searched at most this size). `channel_order` reads arrays. `landmarks`: each
    face also gets the face mesh's points and head pose (fer.inference.mesh).
    Build it with PredictOptions.make, which takes the public functions' keyword arguments.
    """

    model: object
    classes: tuple[str, ...]
    labels: str | None = None
    weights: np.ndarray | None = None
    tta: bool | str = False
    batch_size: int = 256
    face_crop: bool | None = None
    detector: object = DEFAULT_DETECTOR
    margin: float = DEFAULT_MARGIN
    align: bool = False
    close_ups: bool = True
    max_side: int = DETECT_MAX_SIDE
    channel_order: str = "rgb"
    landmarks: bool = False

    @classmethod
    def make(
        cls,
        model=None,
        *,
        engine: str | None = None,
        labels: str | None = None,
        prior: str | Mapping[str, float] = "training",
        tta: bool | str = False,
        batch_size: int = 256,
        face_crop: bool | None = None,
        detector=DEFAULT_DETECTOR,
        margin: float = DEFAULT_MARGIN,
        align: bool = False,
        close_ups: bool = True,
        max_side: int = DETECT_MAX_SIDE,
        channel_order: str = "rgb",
        landmarks: bool = False,
    ) -> PredictOptions:
        """The options of one call: the model loaded (or taken from the cache), and every setting that cannot work
        refused now, before any image is read (a head the model lacks, a bad prior, an unknown detector, align
        with a detector that gives no eye points)."""
        model = resolve_model(model, engine=engine)
        classes = classes_of(model, labels)
        weights = prior_weights(prior, training_prior(model, labels), classes)
        if not callable(detector):
            info = detector_info(detector)
            if align and not info.landmarks:
                with_eyes = sorted(name for name, d in DETECTORS.items() if d.landmarks)
                raise ValueError(
                    f"align=True levels the eyes, which needs eye landmarks: detector={detector!r} has none. "
                    f"Use one that gives them ({', '.join(with_eyes)}; '{DEFAULT_DETECTOR}' is the default), or "
                    "leave align off."
                )
        return cls(
            model,
            classes,
            labels,
            weights,
            tta,
            batch_size,
            face_crop,
            detector,
            margin,
            align,
            close_ups,
            max_side,
            channel_order,
            bool(landmarks),
        )

    def find(self, image: np.ndarray, boxes=None) -> list[Face]:
        """The faces of a decoded image, in its pixels: your `boxes`, the whole image (a face crop), or detected."""
        if boxes is not None:
            faces = [Face(tuple(int(v) for v in b), source="box") for b in boxes]
        elif self.face_crop or (self.face_crop is None and image.shape[:2] == (FACE_SIZE, FACE_SIZE)):
            faces = [Face((0, 0, image.shape[1], image.shape[0]), source="crop")]
        else:
            faces = detect_faces(
                image, self.detector, max_side=self.max_side, close_ups=self.close_ups, whole_image=self.close_ups
            )
        if self.align and any(face.left_eye is None or face.right_eye is None for face in faces):
            raise ValueError("align=True needs eye landmarks, and this detector gave a face without them")
        return faces

    def cut(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The 48x48 face the network sees: a face crop as it is (nothing around it), else cropped by `margin`."""
        if face.source == "crop":
            return to_face(image)
        return crop_face(image, face.box, self.margin, align=face if self.align else None)

    def meshes(self, image: np.ndarray, faces: list[Face]) -> list | None:
        """The faces' meshes (fer.inference.mesh.Mesh, in the image's pixels) where landmarks were asked for, else
        None; a face crop's box is the whole image, and eye points (a detector's) turn the mesh's square upright."""
        if not self.landmarks:
            return None
        from fer.inference.mesh import face_mesh  # ONNX Runtime's session for it: loaded on the first call that asks

        return face_mesh()(image, [f.box for f in faces], [(f.left_eye, f.right_eye) for f in faces])

    def probabilities(self, faces: np.ndarray) -> np.ndarray:
        """(N, classes) probabilities of (N, 48, 48) uint8 faces, batched, with TTA and the prior applied."""
        if not len(faces):
            return np.zeros((0, len(self.classes)), np.float32)
        probs = predict_proba(self.model, faces, tta=self.tta, batch_size=self.batch_size, labels=self.labels)
        return adjust(probs, self.weights)
