"""Writing a file so that no reader ever sees half of it: into a dot-named temporary beside it, then one rename."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def temporary(path: Path) -> Path:
    """Where `path` is written before its rename: a dot name, which listings of data files (Parquet readers,
    `glob("*.csv")`) skip, so a process killed mid-write leaves nothing that looks like a result."""
    return path.with_name(f".{path.name}.tmp")


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """`write(tmp_path)`, then rename over `path`: an interrupted run never leaves half a file."""
    tmp = temporary(Path(path))
    write(tmp)
    os.replace(tmp, path)
