"""The executor flags every subcommand that runs programs shares (``eval``, ``seed``, ``validate``), and the
:class:`~azr_trl.executor.ExecutorConfig` they describe. Their defaults are ``ExecutorConfig``'s."""

from __future__ import annotations

import argparse

from azr_trl.executor.types import EXECUTOR_KINDS, ExecutorConfig
from azr_trl.jsonl import parse_json_object


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--executor``, ``--executor-kwargs``, ``--endpoint``, ``--timeout``, ``--workers`` and ``--memory-mb``."""
    group = parser.add_argument_group("executor (where and how the programs run)")
    group.add_argument(
        "--executor",
        choices=EXECUTOR_KINDS,
        default=ExecutorConfig.backend,
        help="sandbox backend (default: %(default)s)",
    )
    group.add_argument(
        "--executor-kwargs",
        default=None,
        metavar="JSON",
        help="options of the backend as a JSON object, e.g. '{\"max_in_flight\": 8}' (local) or "
        '\'{"endpoint": "http://127.0.0.1:8080"}\' (sandbox_fusion)',
    )
    group.add_argument("--endpoint", default=None, help="SandboxFusion server URL (with --executor sandbox_fusion)")
    group.add_argument(
        "--timeout",
        type=float,
        default=ExecutorConfig.timeout,
        help="wall-clock seconds per program (a test program: all tests of one problem) (default: %(default)s)",
    )
    group.add_argument(
        "--workers", type=int, default=ExecutorConfig.workers, help="programs run in parallel (default: the CPU count)"
    )
    group.add_argument(
        "--memory-mb",
        type=int,
        default=ExecutorConfig.memory_mb,
        help="address-space limit per program, in MiB (default: %(default)s)",
    )


def executor_config_from_args(args: argparse.Namespace) -> ExecutorConfig:
    """The :class:`ExecutorConfig` the flags of :func:`add_executor_arguments` describe; ``ValueError`` naming the
    flag when one is unusable."""
    backend_kwargs = parse_json_object(args.executor_kwargs or None, "--executor-kwargs") or {}
    if args.endpoint and args.executor == "sandbox_fusion":
        backend_kwargs["endpoint"] = args.endpoint
    return ExecutorConfig(
        backend=args.executor,
        backend_kwargs=backend_kwargs,
        timeout=args.timeout,
        workers=args.workers,
        memory_mb=args.memory_mb,
    )
