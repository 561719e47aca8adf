"""Command line: `python -m fer <command>` (also installed as `fer-emotion`); one module per group of commands."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from fer import quiet
from fer.cli import demo, evaluation, models, predicting, training
from fer.cli.common import UsageError

DESCRIPTION = (
    "Train, evaluate and use facial-emotion CNNs. Commands: train, evaluate, predict, run (the notebooks), "
    "sweep, ship, ensemble, export, sample, demo."
)
# Each command module adds its subcommands' arguments beside their handlers.
COMMANDS = (
    training.add_train,
    evaluation.add_evaluate,
    predicting.add_predict,
    training.add_run,
    training.add_sweep,
    models.add_ship,
    models.add_ensemble,
    models.add_export,
    models.add_sample,
    demo.add_demo,
)


def build_parser() -> argparse.ArgumentParser:
    """The `python -m fer` parser: global options, then one subparser per command."""
    parser = argparse.ArgumentParser(prog="python -m fer", description=DESCRIPTION)
    parser.add_argument(
        "--verbose",
        dest="show_logs",
        action="store_true",
        help="show library start-up and log lines (TensorFlow, ffmpeg); put it before the command",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done; 1 some inputs (predict) or runs (sweep) failed; 2 usage, data, model or missing-package
    errors, as one `error:` line (with --verbose, the traceback too); 130 interrupted (predict writes what it did)."""
    args = build_parser().parse_args(argv)
    if args.show_logs:
        os.environ[quiet.VERBOSE_ENV] = "1"
        quiet.uninstall()
    else:  # the commands print their own output: no absl/oneDNN lines while TensorFlow loads (not on `import fer`)
        quiet.install()
    from fer.errors import CheckoutError, DataError, ImageError, MissingPackageError, ModelError, research_extra_error

    try:
        try:
            return args.func(args)
        except ModuleNotFoundError as exc:  # a research command in a core install
            missing = research_extra_error(f"`python -m fer {args.command}`", exc)
            if missing is None:
                raise
            raise missing from exc
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        sys.stderr.close()
        return 0
    except (UsageError, CheckoutError, DataError, ImageError, ModelError, MissingPackageError, ValueError) as exc:
        if args.show_logs:  # --verbose: the whole story, for a bug report
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
