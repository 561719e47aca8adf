"""Keep library start-up noise off the terminal: commands print their own output.

TensorFlow 2.2x writes absl/oneDNN lines ("All log messages before absl::InitializeLog()
...", "oneDNN custom operations are on ...") straight to file descriptor 2 while its
shared libraries load; TF_CPP_MIN_LOG_LEVEL no longer filters them. `install()` puts a
finder on `sys.meta_path` that runs the first `import tensorflow` with fd 2 pointed at
/dev/null, then steps aside: it costs nothing until TensorFlow is imported, and errors
raised by the import still reach the user (Python prints them after fd 2 is restored).

Set FER_VERBOSE=1 (or pass --verbose to the CLI) to see everything.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import threading
from contextlib import contextmanager

VERBOSE_ENV = "FER_VERBOSE"
# Set by fer.pipeline in the notebook kernels it starts (a project command): `import fer` there calls install().
QUIET_KERNEL_ENV = "FER_QUIET_KERNEL"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").lower() in ("1", "true", "yes")


_lock = threading.Lock()
_silenced = {"depth": 0, "saved": -1}


@contextmanager
def stderr_silenced():
    """Point file descriptor 2 at /dev/null (C libraries included) inside the block.

    Counted under a lock: blocks that overlap in several threads restore the real stderr once, when the last
    one ends (saving and restoring in turns would leave fd 2 on /dev/null for good)."""
    with _lock:
        if _silenced["depth"] == 0:
            sys.stderr.flush()
            _silenced["saved"] = os.dup(2)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            os.close(null)
        _silenced["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _silenced["depth"] -= 1
            if _silenced["depth"] == 0:
                os.dup2(_silenced["saved"], 2)
                os.close(_silenced["saved"])


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: later imports are cache hits anyway
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def quiet_exec(module):
            with stderr_silenced():
                exec_module(module)

        spec.loader.exec_module = quiet_exec
        return spec


def uninstall() -> None:
    """Let TensorFlow's start-up lines through again (for --verbose)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietTensorFlowImport)]


def install() -> None:
    """Silence TensorFlow's C++ start-up lines (unless FER_VERBOSE is set); idempotent."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # runtime C++ INFO/WARNING lines
    if verbose() or "tensorflow" in sys.modules:
        return
    if not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())
