"""Turning image files, PIL images and arrays into the 48x48 grayscale faces the models eat.

One place decides how pixels are converted, so training data and inference inputs
go through exactly the same colour conversion and resizing.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fer.errors import ImageError

FACE_SIZE = 48
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".pgm", ".ppm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


def _pil_to_array(image: Image.Image) -> np.ndarray:
    """PIL image of any mode -> uint8 array, (H, W) for gray or (H, W, 3) RGB."""
    image = ImageOps.exif_transpose(image)  # phone photos store rotation in EXIF
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit gray: stretch the used range to 8 bits instead of clipping at 255.
        arr = np.asarray(image, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return arr.round().astype(np.uint8)
    if image.mode in ("L", "1", "F"):
        return np.asarray(image.convert("L"), dtype=np.uint8)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Composite transparency on white: transparent pixels are usually background.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"), dtype=np.uint8)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


# Photos for face detection are decoded smaller past this size on their longer side: detection searches a copy of
# at most 1024 px anyway, and a face it can find there spans far more than the network's 48 px even at half this
# size. JPEGs decode straight to a reduced scale (libjpeg's DCT scaling: a 12 MP phone photo at half size costs a
# fraction of its full decode, docs/experiments.md).
MAX_PHOTO_SIDE = 2048


def is_encoded(image) -> bool:
    """Whether `image` is an encoded image in memory: bytes (an upload, an HTTP body) or a binary file object."""
    return isinstance(image, (bytes, bytearray, memoryview)) or (hasattr(image, "read") and callable(image.read))


def is_file_input(image) -> bool:
    """Whether `image` is decoded from a file's bytes (a path, bytes or a file object), not given as pixels."""
    return isinstance(image, (str, Path)) or is_encoded(image)


def read_image(path) -> np.ndarray:
    """Read an image file (a path, bytes or a binary file object) into a uint8 array: (H, W) gray or (H, W, 3) RGB.

    EXIF orientation is applied, transparency is composited on white and 16-bit
    images are scaled to 8 bits. Raises ImageError naming the file when it is missing,
    empty, truncated or not an image.
    """
    return read_photo(path, max_side=None)[0]


def _source(image) -> tuple[object, str]:
    """(what PIL opens, the name errors give) for a path, bytes or a binary file object."""
    if not is_encoded(image):
        path = Path(image)
        if not path.is_file():
            raise ImageError(f"{path}: no such file")
        return path, str(path)
    name = str(getattr(image, "name", "")) or "the file object"
    data = image.read() if hasattr(image, "read") else bytes(image)
    if isinstance(data, str):
        raise ImageError(f"{name}: read text, not bytes; open the file in binary mode ('rb')")
    if not data:
        raise ImageError(f"{name if hasattr(image, 'read') else 'the bytes'}: empty (0 bytes), not an image")
    return io.BytesIO(data), name if hasattr(image, "read") else f"the {len(data)} bytes"


def read_photo(path, max_side: int | None = MAX_PHOTO_SIDE, gray: bool = False) -> tuple[np.ndarray, float]:
    """(array, scale): `path` (a file path, bytes or a binary file object) decoded smaller where its longer side
    passes `max_side` px (None: full size): a JPEG by its decoder's own reduction (1/2, 1/4 or 1/8, as far as both
    sides stay at least max_side / 2), any image still over twice max_side shrunk to max_side.

    `scale` is original size / decoded size (1.0 when nothing was reduced): multiply a box found in the
    array by it to get the original photo's pixels. `gray`: an (H, W) gray array (a JPEG decodes its luma
    alone, about twice as fast; what face detection and the network read). Errors as read_image.
    """
    source, path = _source(path)
    try:
        with warnings.catch_warnings():
            # PIL warns above ~89 Mpixel; such photos are decoded reduced here, not in full.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
        with image:
            full = max(image.size)
            reduce = bool(max_side) and full > max_side
            if reduce or (gray and image.format == "JPEG"):
                mode = "L" if gray or image.mode == "L" else "RGB"
                image.draft(mode, (max_side // 2, max_side // 2) if reduce else image.size)
            image.load()
            if max_side and max(image.size) > 2 * max_side:  # formats without reduced decoding: shrink now
                image.thumbnail((max_side, max_side), Image.Resampling.BOX)
            arr = _pil_to_array(image)
            if gray and arr.ndim == 3:
                arr = to_gray(arr)
            return arr, full / max(image.size)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path}: {exc} Shrink the image first (faces need far fewer pixels).") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(
            f"{path}: not a readable image ({type(exc).__name__}: {exc}). "
            "Check that the file is a complete JPEG/PNG/BMP/WebP image."
        ) from exc


def as_array(image, channel_order: str = "rgb") -> np.ndarray:
    """Any supported image input -> uint8 array, (H, W) gray or (H, W, 3) RGB.

    `image` may be a path, bytes or a binary file object holding an image file, a PIL image or a NumPy array of
    shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4). Arrays are assumed RGB(A) unless channel_order="bgr"
    (what cv2.imread returns). Float arrays in [0, 1] are scaled to [0, 255].
    """
    if is_file_input(image):
        return read_image(image)
    if isinstance(image, Image.Image):
        return _pil_to_array(image)
    if not isinstance(image, np.ndarray):
        raise ImageError(
            f"Unsupported image input of type {type(image).__name__}: pass a file path, bytes or a binary file "
            "object of an image file, a PIL.Image or a NumPy array."
        )
    if channel_order not in ("rgb", "bgr"):
        raise ImageError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    arr = image
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)) or arr.size == 0:
        raise ImageError(
            f"Cannot interpret an array of shape {image.shape} as an image: expected "
            "(H, W) gray, (H, W, 1), (H, W, 3) RGB/BGR or (H, W, 4) RGBA."
        )
    if arr.dtype == np.uint16:
        arr = (arr / 257.0).round()
    elif np.issubdtype(arr.dtype, np.floating) and arr.max(initial=0) <= 1.0:
        arr = arr * 255.0
    arr = np.clip(arr, 0, 255).astype(np.uint8) if arr.dtype != np.uint8 else arr
    if arr.ndim == 3:
        if channel_order == "bgr":
            arr = arr[..., [2, 1, 0] + ([3] if arr.shape[-1] == 4 else [])]
        if arr.shape[-1] == 4:
            arr = _pil_to_array(Image.fromarray(arr, mode="RGBA"))
    return arr


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) RGB uint8 -> (H, W) uint8 with ITU-R 601 luma (OpenCV's: PIL's "L" mode to within one
    grey level on a few pixels; a PIL round trip costs far more on a large photo, docs/experiments.md)."""
    if image.ndim == 2:
        return image
    import cv2  # loaded on first use: the command line's --help and `import fer` stay light

    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def shrunk(image: np.ndarray, factor: float) -> np.ndarray:
    """`image` resized by `factor` with area averaging, the shrinking by a whole factor first (OpenCV's fast path).

    Area averaging by a fractional factor costs OpenCV ~1 ms on a 600 px photo, as much as a network pass; by a whole
    factor it is a block mean. The last rows and columns a whole factor cannot average (fewer than it) are dropped,
    so a pixel (u, v) of the result is (u, v) / factor of the image.
    """
    import cv2  # loaded on first use: the command line's --help and `import fer` stay light

    h, w = image.shape[:2]
    k = int(round(1 / factor, 6)) if factor < 1 else 1  # 1 / 0.2 is 4.999...: a whole 5
    if k >= 2:
        h, w = h // k * k, w // k * k
        image = cv2.resize(image[:h, :w], (w // k, h // k), interpolation=cv2.INTER_AREA)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return image if image.shape[1::-1] == size else cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def to_face(image: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """Gray or RGB uint8 face crop of any size -> (size, size) gray uint8.

    Shrinking uses area averaging (no aliasing), enlarging uses bicubic: the same
    rule the data loader applies to non-48x48 training images.
    """
    gray = to_gray(image)
    if gray.shape == (size, size):
        return gray
    shrinking = gray.shape[0] > size or gray.shape[1] > size
    resample = Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC
    return np.asarray(Image.fromarray(gray).resize((size, size), resample), dtype=np.uint8)


def to_model_input(images: np.ndarray) -> np.ndarray:
    """(N, 48, 48) uint8 -> (N, 48, 48, 1) float32 in 0..255 (models rescale internally)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    return images.astype(np.float32, copy=False)
