"""Sandboxed execution of model-written programs, and the literal helpers that compare their values.

The package knows programs, inputs and values; what a task type asks of an answer lives in ``azr_trl.tasks``.
"""

from .base import Executor, ExecutorError
from .checks import find_banned, parse_args, parse_literal
from .factory import make_executor
from .types import EXECUTOR_KINDS, REFERENCE_BANNED_MODULES, ExecJob, ExecResult, ExecutorConfig, Verdict
from .values import VALUE_EQUALITIES, literal_equal, truncate_output, values_equal


__all__ = [
    "EXECUTOR_KINDS",
    "REFERENCE_BANNED_MODULES",
    "VALUE_EQUALITIES",
    "ExecJob",
    "ExecResult",
    "Executor",
    "ExecutorConfig",
    "ExecutorError",
    "Verdict",
    "find_banned",
    "literal_equal",
    "make_executor",
    "parse_args",
    "parse_literal",
    "truncate_output",
    "values_equal",
]
