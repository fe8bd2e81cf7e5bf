"""Plain data types shared by both sides of the executor.

This module imports only the standard library: the sandbox child imports it too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


# Where programs run: ``make_executor`` builds the backend named by ``ExecutorConfig.backend``.
EXECUTOR_KINDS: tuple[str, ...] = ("local", "sandbox_fusion")

# The reference implementation's banned list (azr.data_selection_strategy.banned_words). Dotted entries are matched
# against dotted module paths and attribute chains, which the reference's per-component check never did.
REFERENCE_BANNED_MODULES: tuple[str, ...] = (
    "logging",
    "random",
    "multiprocessing",
    "pebble",
    "subprocess",
    "threading",
    "datetime",
    "time",
    "hashlib",
    "hmac",
    "bcrypt",
    "os.sys",
    "os.path",
    "sys.exit",
    "os.environ",
    "calendar",
)


class Verdict(enum.StrEnum):
    """The closed set of outcomes of running one program (``str(v)`` is its value)."""

    OK = "ok"
    SYNTAX_ERROR = "syntax_error"
    NO_ENTRY_FUNCTION = "no_entry_function"
    BANNED_IMPORT = "banned_import"
    INVALID_INPUT = "invalid_input"
    RUNTIME_ERROR = "runtime_error"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    OUTPUT_TOO_LARGE = "output_too_large"
    NONDETERMINISTIC = "nondeterministic"
    UNREPRESENTABLE = "unrepresentable"
    CRASHED = "crashed"


@dataclass(frozen=True)
class ExecJob:
    """One program to run: ``f(*args)`` where ``args`` is the argument-list source ``input`` (e.g. ``"'ab', [1, 2]"``).

    ``check_banned`` is off when verifying a solver's program against a task whose own program was already checked
    (the induction solver writes code; it is checked like a proposal by default).
    """

    program: str
    input: str
    entry: str = "f"
    check_banned: bool = True
    determinism_runs: int | None = None  # None: the executor's configured default


@dataclass(frozen=True)
class ExecResult:
    """The verdict for one :class:`ExecJob`; ``output`` is ``repr(f(*args))`` when the verdict is ``ok``."""

    status: Verdict
    output: str | None = None
    error: str | None = None
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is Verdict.OK


@dataclass
class ExecutorConfig:
    """Which executor backend to build, and its limits and behaviour; every field has a safe default.

    The one home of the executor defaults: `AZRConfig`, the CLI flags and the evaluation read them from here.
    """

    backend: str = field(
        default="local",
        metadata={"help": "Where programs run: `local` (forked sandbox pool) or `sandbox_fusion` (a remote server)."},
    )
    backend_kwargs: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": 'Extra options of the backend\'s constructor, e.g. `{"endpoint": "http://127.0.0.1:8080"}` for '
            'sandbox_fusion, `{"max_in_flight": 8}` for local.'
        },
    )

    timeout: float = field(
        default=10.0, metadata={"help": "Wall-clock seconds per program (all determinism runs), enforced by SIGKILL."}
    )
    workers: int | None = field(
        default=None,
        metadata={"help": "CPU workers (None: os.cpu_count()); local runs max_in_flight programs at once."},
    )
    memory_mb: int = field(default=1024, metadata={"help": "Address-space limit per program (RLIMIT_AS), in MiB."})
    cpu_time: float | None = field(
        default=None, metadata={"help": "CPU-seconds limit per program (RLIMIT_CPU); None: ceil(timeout) + 1."}
    )
    max_processes: int = field(
        default=0,
        metadata={"help": "RLIMIT_NPROC of the sandbox user; 0: a program can start no process and no thread."},
    )
    max_output_chars: int = field(default=10_000, metadata={"help": "Longest accepted repr of a return value."})
    max_stdout_chars: int = field(
        default=10_000, metadata={"help": "A program printing more than this gets `output_too_large`."}
    )
    recursion_limit: int = field(default=1000, metadata={"help": "sys.setrecursionlimit inside the sandbox."})
    determinism_runs: int = field(
        default=2, metadata={"help": "Calls of f per program; all reprs must match (paper: 2)."}
    )
    banned_modules: tuple[str, ...] = field(
        default_factory=lambda: REFERENCE_BANNED_MODULES,
        metadata={"help": "Modules a program may not use (dotted entries such as os.path are matched as paths)."},
    )
    drop_privileges: bool = field(
        default=True, metadata={"help": "When running as root, run programs as the `nobody` user."}
    )
    network_namespace: bool = field(
        default=True, metadata={"help": "Run programs in an empty network namespace where the kernel allows it."}
    )
    max_in_flight: int | None = field(
        default=None,
        metadata={
            "help": "Programs running at once in the local backend; None: 16 x workers, at most 128, and no more than "
            "the available memory holds at memory_mb each."
        },
    )
    max_program_chars: int = field(default=50_000, metadata={"help": "Longer programs are refused unrun."})
    max_input_chars: int = field(default=20_000, metadata={"help": "Longer argument lists are `invalid_input`."})
    hash_seed: int = field(
        default=0, metadata={"help": "PYTHONHASHSEED of the sandbox, so set/dict orders match across processes."}
    )
