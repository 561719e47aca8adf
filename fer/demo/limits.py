"""What the demo accepts: upload size, pixels, clip length and jobs at once, checked with a message that says so."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class LimitError(ValueError):
    """An input the demo refuses (too big, too long, unreadable): the message is shown to the person as is."""


@dataclass(frozen=True)
class Limits:
    """The demo's limits; each is a `python -m fer demo` option of the same name.

    upload_mb: largest file the browser may send. max_pixels: largest photo (width x height). clip_seconds:
    longest clip. jobs: photos or clips analysed at once (the rest wait in a queue of `queue` places; a full
    queue is refused). max_faces_explained: saliency maps per photo (each costs ~100 network passes).
    """

    upload_mb: int = 25
    max_pixels: int = 40_000_000
    clip_seconds: float = 60.0
    jobs: int = 2
    queue: int = 16
    max_faces_explained: int = 8

    def check_photo(self, path: str | Path) -> None:
        """LimitError where the photo at `path` has more pixels than allowed (read from its header only)."""
        from PIL import Image, UnidentifiedImageError

        name = Path(path).name
        try:
            with Image.open(path) as image:
                width, height = image.size
        except (UnidentifiedImageError, OSError) as exc:
            raise LimitError(f"{name}: not an image this demo can read ({type(exc).__name__}).") from None
        if width * height > self.max_pixels:
            raise LimitError(
                f"{name} is {width}x{height} ({width * height / 1e6:.0f} MP); this demo takes photos up to "
                f"{self.max_pixels / 1e6:.0f} MP (`--max-pixels`). Scale it down and try again."
            )

    def check_clip(self, path: str | Path) -> float:
        """The clip's length in seconds, or LimitError where it is unreadable, empty or longer than allowed."""
        import cv2

        name = Path(path).name
        if Path(path).stat().st_size == 0:
            raise LimitError(f"{name} is empty (0 bytes).")
        video = cv2.VideoCapture(str(path))
        try:
            frames, fps = video.get(cv2.CAP_PROP_FRAME_COUNT), video.get(cv2.CAP_PROP_FPS)
            readable = video.isOpened() and video.read()[0]
        finally:
            video.release()
        if not readable:
            raise LimitError(f"{name}: no video frame could be read (not a video, or a codec OpenCV lacks).")
        seconds = frames / fps if fps > 0 and frames > 0 else 0.0
        if seconds > self.clip_seconds:
            raise LimitError(
                f"{name} is {seconds:.0f} s long; this demo takes clips up to {self.clip_seconds:.0f} s "
                "(`--clip-seconds`). Cut it, or use `python -m fer predict` for long videos."
            )
        return seconds
