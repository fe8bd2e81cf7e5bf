"""The executor interface shared by the backends (``make_executor`` in ``factory.py`` builds one)."""

from __future__ import annotations

import abc
import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .checks import ProgramCheck, check_program, parse_args, parse_literal
from .types import ExecJob, ExecResult, ExecutorConfig, Verdict


class ExecutorError(RuntimeError):
    """The executor itself failed (not a program): the sandbox cannot start, the server is unreachable..."""


@dataclass(frozen=True)
class PreparedJob:
    """A job that passed the parent-side checks: compiled program, parsed arguments."""

    job: ExecJob
    program: ProgramCheck
    args: tuple


class Executor(abc.ABC):
    """Runs batches of :class:`ExecJob` in a sandbox and returns one :class:`ExecResult` per job, in order.

    The parent-side work is the same for every backend and never runs model code: the program is compiled (syntax
    errors and banned modules are verdicts without a sandbox run), the input must parse as literals
    (``invalid_input``), and an ``ok`` output is accepted only if ``ast.literal_eval`` reads it back (otherwise
    ``unrepresentable``), whatever the sandbox reported.
    """

    _CACHE_SIZE = 4096

    def __init__(self, config: ExecutorConfig | None = None):
        self.config = config or ExecutorConfig()
        self.programs_run = 0  # totals over the executor's life, for throughput metrics
        self._lock = threading.Lock()
        self._program_cache: OrderedDict[tuple[str, bool], ProgramCheck] = OrderedDict()

    def run(self, jobs: Sequence[ExecJob], progress: bool = False) -> list[ExecResult]:
        """Run one batch; results come back in the order of ``jobs``. ``progress`` shows a tqdm bar on stderr.

        Identical jobs (same program, input, entry function, check and number of runs) run once and share their
        result: a task's Monte-Carlo rollouts and a batch of solver answers often repeat one. ``programs_run`` counts
        the programs actually run.
        """
        distinct, slots = _distinct(jobs)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(distinct), desc="executing", unit="prog", leave=False)
        try:
            with self._lock:
                results = self._run_batch(distinct, bar.update if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()
        self.programs_run += len(distinct)
        return [results[slot] for slot in slots]

    async def arun(self, jobs: Sequence[ExecJob], progress: bool = False) -> list[ExecResult]:
        """``run`` for async callers (runs in a worker thread; the event loop stays free)."""
        return await asyncio.to_thread(self.run, jobs, progress)

    def _run_batch(self, jobs: list[ExecJob], on_done: Callable[[int], object] | None) -> list[ExecResult]:
        """Check every job in the parent, run the ones that passed, post-check their results (backends that can
        overlap these phases override this)."""
        prepared = [self._prepare(job) for job in jobs]
        pending = [i for i, item in enumerate(prepared) if isinstance(item, PreparedJob)]
        if on_done is not None and len(pending) < len(jobs):
            on_done(len(jobs) - len(pending))
        done = self._run_prepared([prepared[i] for i in pending], on_done)  # type: ignore[misc]
        results: list[ExecResult] = prepared  # type: ignore[assignment]
        for i, result in zip(pending, done, strict=True):
            results[i] = self._postcheck(result)
        return results

    @abc.abstractmethod
    def _run_prepared(self, jobs: list[PreparedJob], on_done: Callable[[int], object] | None) -> list[ExecResult]:
        """Run jobs that passed the parent-side checks; call ``on_done(n)`` as results arrive."""

    def close(self) -> None:  # noqa: B027 (backends without resources need not override it)
        """Release the backend's processes or connections. Safe to call twice."""
        self._program_cache.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def check_program(self, program: str, check_banned: bool = True) -> ProgramCheck:
        """Compile and scan a program once (cached by text): the same program is often run on many inputs."""
        key = (program, bool(check_banned))
        cached = self._program_cache.get(key)
        if cached is not None:
            self._program_cache.move_to_end(key)
            return cached
        result = check_program(program, self.config.banned_modules, check_banned)
        self._program_cache[key] = result
        if len(self._program_cache) > self._CACHE_SIZE:
            self._program_cache.popitem(last=False)
        return result

    def _prepare(self, job: ExecJob) -> ExecResult | PreparedJob:
        cfg = self.config
        if not isinstance(job.program, str) or len(job.program) > cfg.max_program_chars:
            return ExecResult(
                Verdict.SYNTAX_ERROR, error=f"the program is not text of at most {cfg.max_program_chars} characters"
            )
        if not isinstance(job.entry, str) or not job.entry.isidentifier():
            return ExecResult(Verdict.NO_ENTRY_FUNCTION, error=f"invalid entry function name {job.entry!r}")
        program = self.check_program(job.program, job.check_banned)
        if program.verdict is not None:
            return ExecResult(Verdict(program.verdict), error=program.error)
        args = parse_args(job.input, cfg.max_input_chars)
        if args is None:
            return ExecResult(Verdict.INVALID_INPUT, error="the input is not a list of Python literals")
        return PreparedJob(job, program, args)

    def _postcheck(self, result: ExecResult) -> ExecResult:
        status, output = result.status, result.output
        if status is Verdict.NONDETERMINISTIC:
            # The sandbox reports the first repr; one that is no literal (<object at 0x...>) is the deeper problem.
            if isinstance(output, str) and not parse_literal(output, self.config.max_output_chars)[0]:
                return ExecResult(
                    Verdict.UNREPRESENTABLE,
                    error=f"the repr is not a Python literal: {output[:80]}",
                    duration=result.duration,
                )
            return ExecResult(status, error=result.error, duration=result.duration)
        if status is not Verdict.OK:
            return ExecResult(status, error=result.error, duration=result.duration) if output is not None else result
        if not isinstance(output, str):
            return ExecResult(Verdict.UNREPRESENTABLE, error="no output", duration=result.duration)
        if len(output) > self.config.max_output_chars:
            return ExecResult(
                Verdict.OUTPUT_TOO_LARGE,
                error=f"repr longer than {self.config.max_output_chars} characters",
                duration=result.duration,
            )
        if not parse_literal(output, self.config.max_output_chars)[0]:
            return ExecResult(
                Verdict.UNREPRESENTABLE,
                error=f"the repr is not a Python literal: {output[:80]}",
                duration=result.duration,
            )
        return result


def _distinct(jobs: Sequence[ExecJob]) -> tuple[list[ExecJob], list[int]]:
    """The distinct jobs of a batch, and for each job the index of its distinct job."""
    index: dict[ExecJob, int] = {}
    distinct: list[ExecJob] = []
    slots: list[int] = []
    for job in jobs:
        try:
            slot = index.setdefault(job, len(distinct))
        except TypeError:  # a field of the wrong, unhashable type: the job runs alone and gets its own verdict
            slot = len(distinct)
        if slot == len(distinct):
            distinct.append(job)
        slots.append(slot)
    return distinct, slots
