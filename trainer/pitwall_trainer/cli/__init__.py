"""`pitwall-train`: the trainer's command line.

Each command lives in its own module of this package with a `register(subparsers)` function
that adds its parser and sets `handler`. Add a new command by adding its module to
`COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from pitwall_trainer.errors import EXIT_RETRYABLE, PitwallError

COMMAND_MODULES = [
    "pitwall_trainer.cli.data",
    "pitwall_trainer.cli.train",
    "pitwall_trainer.cli.backtest",
    "pitwall_trainer.cli.monitor",
    "pitwall_trainer.cli.tune",
    "pitwall_trainer.cli.run",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pitwall-train",
        description="Train, evaluate and track Formula 1 prediction models.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code (0 ok, 2 bad input, 1 anything else)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # read when mlflow is first imported
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args) or 0)
    except PitwallError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the contract: anything unexpected is retryable
        logging.getLogger("pitwall_trainer").exception("unexpected failure")
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_RETRYABLE
