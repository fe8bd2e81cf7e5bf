"""``azr-trl train --config RECIPE [--field value ...]``: run the training script in this process."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``train`` subcommand; every argument after ``train`` goes to the training script's parser."""
    parser = subparsers.add_parser(
        "train",
        add_help=False,  # --help must reach the script's parser, which lists every recipe field
        help="train with Absolute Zero self-play from a recipe (azr-trl train --config RECIPE [--field value ...])",
        description="Run azr_trl.launch in this process. Multi-GPU: accelerate launch ... -m azr_trl.launch --config ...",
    )

    # argparse cannot hand a subcommand arguments that start with "--" and that it does not know (REMAINDER only
    # works after a positional), so this subparser takes everything as is and leaves parsing to TrlParser.
    def take_everything(args=None, namespace=None):
        namespace = namespace if namespace is not None else argparse.Namespace()
        namespace.script_args = list(args or [])
        namespace.func = run
        return namespace, []

    parser.parse_known_args = take_everything
    return parser


def run(args: argparse.Namespace) -> int:
    """Parse the recipe and overrides, check them before loading a model, then train."""
    from azr_trl.launch import run as run_training

    return run_training(list(args.script_args), prog="azr-trl train")
