"""Where a run computes: its precision (bfloat16 where the machine computes it natively) and its devices
(keras.distribution data parallelism on JAX)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import keras

from fer.modeling.config import PRECISIONS, TrainConfig


def native_bfloat16() -> bool:
    """Whether this machine computes bfloat16 natively: a GPU (JAX), or a CPU with AVX512_BF16 or AMX.

    Elsewhere bfloat16 is emulated and slower than float32, so "auto" picks float32 there.
    """
    if keras.backend.backend() == "jax":
        import jax

        if jax.devices()[0].platform == "gpu":
            return True
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no cheap way to tell, stay with float32
        return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str) -> str:
    """ "auto" -> "bfloat16" where native, else "float32"; the others pass through."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bfloat16" if native_bfloat16() else "float32"
    return precision


_initialized = False


def data_parallel(config: TrainConfig):
    """The keras.distribution.DataParallel `config` trains under, or None for one device.

    Keras' distribution API runs on JAX. Several hosts: set KERAS_DISTRIBUTION_JOB_ADDRESSES,
    KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID (keras.distribution.initialize reads them).
    """
    global _initialized
    if config.distribute == "none":
        return None
    if keras.backend.backend() != "jax":
        if config.distribute == "data_parallel":
            raise ValueError(
                "distribute='data_parallel' uses keras.distribution, which runs on JAX: set KERAS_BACKEND=jax "
                "(pip install -e '.[jax]'), or use distribute='auto' or 'none'"
            )
        return None
    if os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES") and not _initialized:
        keras.distribution.initialize()
        _initialized = True
    devices = keras.distribution.list_devices()
    if len(devices) < 2:
        return None
    if config.distribute == "auto" and devices[0].split(":")[0].lower() == "cpu":
        return None  # several CPU "devices" only exist when XLA is told to fake them: no gain there unless asked
    return keras.distribution.DataParallel(devices=devices)


def scaled_for_devices(config: TrainConfig, n_devices: int) -> TrainConfig:
    """`config` with batch_size and learning_rate as trained: multiplied by the device count where
    batch_per_device (the linear scaling rule), else as given."""
    if not config.batch_per_device or n_devices < 2:
        return config
    return replace(config, batch_size=config.batch_size * n_devices, learning_rate=config.learning_rate * n_devices)
