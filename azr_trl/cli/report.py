"""``azr-trl report RUN_DIR``: PNG plots and a self-contained HTML page for a training run."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``report`` subcommand."""
    parser = subparsers.add_parser(
        "report",
        help="write plots and an HTML report for a training run",
        description=(
            "Read RUN_DIR/trainer_state.json (or the latest checkpoint-*'s) and RUN_DIR/completions/*.parquet, and "
            "write PNG plots plus one self-contained report.html: rewards and accuracy per task type and role, "
            "valid-proposal rate and verdicts, buffer growth, completion lengths and the step-time split."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the output_dir of a training run")
    parser.add_argument("--output", "-o", default=None, metavar="DIR", help="where to write (default: RUN_DIR/report)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the report and print the path of the HTML page; exit code 1 with a message if RUN_DIR is not a run."""
    import matplotlib

    matplotlib.use("Agg")
    from azr_trl.run_outputs.report import write_report

    try:
        page = write_report(args.run_dir, args.output)
    except (FileNotFoundError, ValueError) as err:  # ValueError: a corrupt trainer_state.json
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(page)
    return 0
