"""What every subcommand shares: usage errors, option parsing, the TTA flag, atomic writes."""

from __future__ import annotations

import argparse
from pathlib import Path

from fer.analysis.probabilities import LABEL_SETS, TTA_SCHEMES
from fer.inference.models import ENGINES


class UsageError(Exception):
    """The command line asks for something that cannot be done (exit code 2, like argparse's errors)."""


def load_options(config: str | None, pairs: list[str] | None, flag: str) -> tuple[dict, list[tuple[str, object]]]:
    """(mapping from a YAML file, [(key, value)] from repeated `flag KEY=VALUE` arguments).

    Values are YAML scalars or flow collections: 0.1, 1e-4, true, null, [1, 2], {a: 1}. The file
    may also be a run's own config.json, to repeat or resume that run.
    """
    import yaml

    from fer.pipeline import load_yaml

    options: dict = {}
    if config:
        if not Path(config).is_file():
            raise UsageError(f"{config}: no such options file (--config takes a YAML file, or a run's config.json)")
        try:
            loaded = load_yaml(Path(config).read_text()) or {}
        except yaml.YAMLError as exc:
            raise UsageError(f"{config}: not valid YAML ({exc})") from exc
        if not isinstance(loaded, dict):
            raise UsageError(f"{config}: expected a YAML mapping of options")
        options.update(loaded)
    parsed = []
    for item in pairs or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"{flag} expects KEY=VALUE, got {item!r}")
        try:
            parsed.append((key, load_yaml(value)))
        except yaml.YAMLError as exc:
            raise UsageError(f"{flag} {item!r}: the value is not valid YAML ({exc})") from exc
    return options, parsed


DATA_ORDER = "default: $FER2013_DIR, else data/fer2013"


def add_data(p: argparse.ArgumentParser, what: str) -> None:
    """--data, found like everywhere else: the flag, else $FER2013_DIR, else data/fer2013."""
    p.add_argument("--data", help=f"{what} ({DATA_ORDER})")


def add_model(p: argparse.ArgumentParser) -> None:
    """--model: any model file the package reads; none means the shipped default."""
    p.add_argument("--model", help="a .keras, .json (ensemble), .onnx or .tflite model (default: the shipped default)")


def add_engine(p: argparse.ArgumentParser, default: str, ray: bool = False) -> None:
    """--engine: which runtime runs a .keras/.json model (fer.inference.models.ENGINES); `ray`: also "ray", the job
    on Ray Data (fer.pipeline.ray_predict), its actors running the ONNX twin."""
    p.add_argument(
        "--engine",
        default=default,
        choices=[*ENGINES, "ray"] if ray else ENGINES,
        help="auto: the model's ONNX twin where it has an up-to-date one, else Keras; int8: its int8 twin"
        + ("; ray: the whole job on Ray Data (--address, --workers; the scale extra)" if ray else "")
        + f" (default: {default})",
    )


def add_tta(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tta",
        nargs="?",
        const=True,
        default=False,
        choices=TTA_SCHEMES,
        help="test-time augmentation: average over views of each face (default scheme; or name one)",
    )


def add_answer(p: argparse.ArgumentParser) -> None:
    """--labels and --prior: which head of a dual-head model answers, and the class prior to answer under."""
    p.add_argument(
        "--labels",
        choices=list(LABEL_SETS),
        help="which label set a dual-head model answers in (default: its first, FER+); a single-head model "
        "takes only its own",
    )
    p.add_argument(
        "--prior",
        type=parse_prior,
        default="training",
        metavar="PRIOR",
        help="training (default: as the model learned), uniform (every emotion equally likely, e.g. posed photo "
        "sets), or shares such as angry=1,happy=2,neutral=1 (normalised; unlisted emotions 0)",
    )


def parse_prior(text: str):
    """--prior's value: "training", "uniform" or a mapping from `emotion=share,...` (argparse type)."""
    if text in ("training", "uniform"):
        return text
    shares = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            shares[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected training, uniform or EMOTION=SHARE,... (e.g. angry=1,happy=2)"
            )
    return shares
