"""The ``azr-trl`` command: one subcommand per module in this package, each thin."""

from __future__ import annotations

import argparse
import importlib
import sys


# Each module defines ``add_parser(subparsers)`` (registering its subcommand with ``func=run``) and ``run(args)``.
SUBCOMMAND_MODULES = ("model_path", "validate", "seed", "train", "eval", "report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="azr-trl",
        description="Absolute Zero self-play on Hugging Face TRL: propose, validate and solve code-reasoning tasks.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"azr_trl.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
