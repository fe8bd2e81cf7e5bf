"""The local backend: a pre-warmed sandbox template that forks one locked-down child per program.

The parent (this module, living in the trainer) never runs model code. It starts the template once (``_sandbox.py``,
compiled here and sent to a tiny bootstrap), streams each batch to it over a pipe in chunks as the jobs pass the
parent-side checks, and reads back per-program events. If the template dies (or stops answering), the parent kills
the programs it had started, starts a new template, re-sends the jobs that had not started and re-runs the ones that
were running one at a time, so a program that brings the template down is identified and costs one ``crashed``
verdict.
"""

from __future__ import annotations

import itertools
import logging
import marshal
import os
import pwd
import shutil
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator

from ._template_process import TemplateDied, TemplateProcess, kill_orphan_group, start_template
from .base import Executor, ExecutorError, PreparedJob
from .types import ExecJob, ExecResult, ExecutorConfig, Verdict


logger = logging.getLogger(__name__)

# Loaded once by the template, so programs find them imported: the modules AZR programs use most. Each costs every fork
# (typing's 650 kB of memory add ~40 us), while a child that imports a module itself pays for it alone (typing: ~10 ms,
# and 13% of HumanEval prompts import it). Anything else a program imports loads in its own child.
DEFAULT_PRELOAD = (
    "collections", "itertools", "math", "functools", "heapq", "bisect", "operator", "string", "re", "typing",
)  # fmt: skip
_CHUNK = 16  # jobs per message to the template: the first programs start while the parent prepares the rest
_WATCHDOG_GRACE = 30.0  # extra seconds of silence, beyond the program timeout, before the template is presumed hung


def _cleanup(template: TemplateProcess | None, workdir: str, owner: int) -> None:
    """Stop a template and remove the working directory (also run at garbage collection / interpreter exit).

    Only in the process that made them: a forked copy of the trainer (a data-loader worker...) must not tear down the
    parent's sandbox when it exits.
    """
    if os.getpid() != owner:
        return
    if template is not None:
        template.stop()
    if os.path.isdir(workdir):
        os.chmod(workdir, 0o700)
        shutil.rmtree(workdir, ignore_errors=True)


def default_in_flight(workers: int, memory_mb: int | None, available_kib: int | None = None) -> int:
    """Programs the local executor runs at once unless told: 16 per worker, at most 128, and no more than the memory
    available (``available_kib``, default: now, from ``/proc/meminfo``) holds if every one used its whole
    ``memory_mb``.

    Many in flight make the template's work cheaper per program: several children have exited each time it wakes, and
    it forks their successors back to back (``_sandbox.Template.spawn``). The memory bound keeps a batch of programs
    that all allocate up to their limit from exhausting the machine; if memory runs out anyway, the kernel kills
    programs first (the sandbox's ``oom_score_adj`` is 1000).
    """
    slots = min(16 * workers, 128)
    if available_kib is None:
        available_kib = _available_memory_kib()
    if memory_mb and available_kib is not None:
        slots = min(slots, available_kib // (memory_mb * 1024))
    return max(1, slots)


def _available_memory_kib() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            return next(int(line.split()[1]) for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None


class LocalExecutor(Executor):
    """Fork-per-program sandbox on this machine (see the module docstring and ``_sandbox.py``).

    Args:
        config: limits and behaviour.
        max_in_flight: programs running at once (default ``config.max_in_flight``, else ``default_in_flight``).
        python: interpreter for the sandbox (default ``sys.executable``, by absolute path).
        tmp_dir: where the sandbox's empty, read-only working directory is made (default: the system temp dir).
        preload: modules the template imports once for all programs (default ``DEFAULT_PRELOAD``).
    """

    def __init__(
        self,
        config: ExecutorConfig | None = None,
        *,
        max_in_flight: int | None = None,
        python: str | None = None,
        tmp_dir: str | None = None,
        preload: tuple[str, ...] | None = None,
    ):
        super().__init__(config)
        cfg = self.config
        workers = cfg.workers or os.cpu_count() or 1
        self.max_in_flight = max(1, max_in_flight or cfg.max_in_flight or default_in_flight(workers, cfg.memory_mb))
        self.python = os.path.abspath(python or sys.executable)
        self.preload = tuple(DEFAULT_PRELOAD if preload is None else preload)
        # One empty directory, the working directory of every program; nobody can write in it (mode 0555, sandbox
        # user, audit hook), the template checks it stays empty, and it is removed on close().
        self.workdir = tempfile.mkdtemp(prefix="azr-exec-", dir=tmp_dir)
        os.chmod(self.workdir, 0o555)
        self.network_isolated = False
        self.restarts = 0
        self.last_pids: list[int] = []  # pids of the programs of the last batch (tests check they are all gone)
        self._template: TemplateProcess | None = None
        # A new network namespace (only loopback, down) needs root; util-linux's `unshare` makes it before exec.
        self._unshare = shutil.which("unshare") if cfg.network_namespace and os.geteuid() == 0 else None
        self._owner = os.getpid()
        self._finalizer = weakref.finalize(self, _cleanup, None, self.workdir, self._owner)
        self._next_id = 0
        self._next_program = 0
        self._start()

    # ----------------------------------------------------------------------------------------------- template life
    def _sandbox_config(self) -> dict:
        cfg = self.config
        try:
            nobody = pwd.getpwnam("nobody")
            uid, gid = nobody.pw_uid, nobody.pw_gid
        except KeyError:
            uid = gid = 65534
        cpu = cfg.cpu_time if cfg.cpu_time is not None else cfg.timeout + 1
        return {
            "timeout": float(cfg.timeout),
            "memory_bytes": int(cfg.memory_mb) * 1024 * 1024 if cfg.memory_mb else None,
            "cpu_seconds": max(1, int(-(-cpu // 1))),
            "max_processes": int(cfg.max_processes),
            "max_output_chars": int(cfg.max_output_chars),
            "max_stdout_chars": int(cfg.max_stdout_chars),
            "recursion_limit": int(cfg.recursion_limit),
            "banned": list(cfg.banned_modules),
            "drop_privileges": bool(cfg.drop_privileges),
            "uid": uid,
            "gid": gid,
            "workdir": self.workdir,
            "max_in_flight": self.max_in_flight,
            "preload": list(self.preload),
        }

    def _start(self) -> None:
        # Nothing of the trainer's environment (tokens, keys) reaches the sandbox; the hash seed must be set at start.
        # LD_BIND_NOW: the template resolves every library symbol at start, so no child pays the dynamic linker's lazy
        # binding (about 10 page faults per program: symbol lookups and writes to the offset tables).
        env = {
            "PYTHONHASHSEED": str(self.config.hash_seed),
            "PYTHONUTF8": "1",
            "LC_ALL": "C.UTF-8",
            "LD_BIND_NOW": "1",
        }
        attempts = [(True, [self._unshare, "--net", "--"]), (False, [])] if self._unshare else [(False, [])]
        errors = []
        for with_netns, prefix in attempts:
            try:
                template, hello = start_template(self.python, prefix, env, self._sandbox_config())
            except TemplateDied as err:
                errors.append(str(err))
                if with_netns:
                    logger.warning(
                        "Cannot start the sandbox in a new network namespace (%s); sockets are refused by the audit "
                        "hook only.",
                        err,
                    )
                    self._unshare = None
                continue
            if hello[3] != sys.hexversion:  # code objects travel as marshal data: same interpreter version only
                template.kill()
                raise ExecutorError(
                    f"the sandbox interpreter {self.python} is not this Python ({sys.version.split()[0]})"
                )
            template.netns = hello[2]
            self.network_isolated = template.netns != os.readlink("/proc/self/ns/net")
            self._template = template
            self._finalizer.detach()
            self._finalizer = weakref.finalize(self, _cleanup, template, self.workdir, self._owner)
            return
        raise ExecutorError(f"cannot start the sandbox template with {self.python}: {'; '.join(errors)}")

    def _restart(self, orphans: list[int]) -> None:
        if self._template is not None:
            self._template.kill()
            self._template.stop(wait=1.0)
            self._template = None
        for pid in orphans:
            kill_orphan_group(pid)
        self.restarts += 1
        self._start()

    def close(self) -> None:
        """Stop the template (it kills any program still running) and remove the working directory."""
        self._finalizer()
        self._template = None
        super().close()

    # ------------------------------------------------------------------------------------------------------ batches
    def _run_batch(self, jobs: list[ExecJob], on_done: Callable[[int], object] | None) -> list[ExecResult]:
        """Prepare jobs chunk by chunk and send each chunk as soon as it is ready, so that the parent's compiling and
        parsing overlaps the programs already running; results are post-checked as they arrive."""
        results: list[ExecResult | None] = [None] * len(jobs)
        prepared: dict[int, PreparedJob] = {}

        def feed() -> Iterator[list[int]]:
            chunk: list[int] = []
            for i, job in enumerate(jobs):
                item = self._prepare(job)
                if isinstance(item, PreparedJob):
                    prepared[i] = item
                    chunk.append(i)
                    if len(chunk) == _CHUNK:
                        yield chunk
                        chunk = []
                else:
                    results[i] = item
                    if on_done is not None:
                        on_done(1)
            if chunk:
                yield chunk

        self._run_fed(feed(), prepared, results, on_done)
        return results  # type: ignore[return-value]

    def _run_prepared(self, jobs: list[PreparedJob], on_done: Callable[[int], object] | None) -> list[ExecResult]:
        results: list[ExecResult | None] = [None] * len(jobs)
        prepared = dict(enumerate(jobs))
        chunks = [list(range(k, min(k + _CHUNK, len(jobs)))) for k in range(0, len(jobs), _CHUNK)]
        self._run_fed(iter(chunks), prepared, results, on_done)
        return results  # type: ignore[return-value]

    def _run_fed(
        self,
        feed: Iterator[list[int]],
        prepared: dict[int, PreparedJob],
        results: list[ExecResult | None],
        on_done: Callable[[int], object] | None,
    ) -> None:
        """Run every chunk of job indices ``feed`` yields; fill ``results`` (post-checked) at those indices."""
        if self._template is None:
            if not os.path.isdir(self.workdir):
                raise ExecutorError("this executor was closed")
            self._start()
        self.last_pids = []
        suspects: list[int] = []
        while True:
            before = results.count(None)
            running, unstarted = self._dispatch(feed, prepared, results, on_done)
            suspects += running
            if unstarted and not running and results.count(None) == before:
                # The template died before starting anything or finishing anything: rather than retrying forever,
                # run the rest one at a time, so that whatever brings it down is found and costs one verdict.
                suspects += unstarted
                suspects += [index for chunk in feed for index in chunk]
                break
            if unstarted:
                feed = itertools.chain([unstarted], feed)
            elif not running:
                break
        for index in suspects:
            # A job that was running when the template died runs alone: if the template dies again, it was this job,
            # and it alone gets the verdict.
            running, unstarted = self._dispatch(iter([[index]]), prepared, results, on_done)
            if running or unstarted:
                results[index] = ExecResult(Verdict.CRASHED, error="the program brought down the sandbox")
                if on_done is not None:
                    on_done(1)

    def _wire(self, ids: dict[int, int], prepared: dict[int, PreparedJob]) -> tuple[dict, list]:
        """One chunk's message: each distinct program once (marshalled code), then the jobs referring to it.

        ``ids`` maps wire ids to job indices. Wire ids and program numbers are unique over the executor's life, so a
        late event from an abandoned batch is never taken for a job of this one, and a chunk never overwrites a
        program that an earlier chunk's queued jobs still need.
        """
        default_runs = self.config.determinism_runs
        numbers: dict[int, int] = {}
        programs: dict[int, bytes] = {}
        wire = []
        for wire_id, i in ids.items():
            job_prepared = prepared[i]
            code = job_prepared.program.code
            number = numbers.get(id(code))
            if number is None:
                number = numbers[id(code)] = self._next_program
                self._next_program += 1
                programs[number] = marshal.dumps(code)
            job = job_prepared.job
            runs = max(1, int(job.determinism_runs or default_runs))
            wire.append(
                (
                    wire_id,
                    number,
                    marshal.dumps(job_prepared.args),
                    job.entry,
                    bool(job.check_banned),
                    runs,
                    job_prepared.program.imports,
                )
            )
        return programs, wire

    def _dispatch(
        self,
        feed: Iterator[list[int]],
        prepared: dict[int, PreparedJob],
        results: list[ExecResult | None],
        on_done: Callable[[int], object] | None,
    ) -> tuple[list[int], list[int]]:
        """Send the chunks of ``feed`` to the template, keeping its queue a little ahead of what it can start, and
        collect their results.

        Returns ``([], [])`` when the feed is exhausted and every job finished; after the template died, the jobs
        that were running and the ones sent but never started (the feed's remaining chunks are not consumed).
        """
        template = self._template
        assert template is not None
        ids: dict[int, int] = {}  # wire id -> job index
        started: dict[int, int] = {}  # job index -> pid
        remaining: set[int] = set()  # sent, not finished
        fed = True
        ahead = self.max_in_flight + _CHUNK  # jobs waiting in the template's queue before we stop preparing more
        silence = self.config.timeout + _WATCHDOG_GRACE
        last_event = time.monotonic()
        try:
            while fed or remaining:
                while fed and len(remaining) - len(started) < ahead:
                    chunk = next(feed, None)
                    if chunk is None:
                        fed = False
                        break
                    chunk_ids = {self._next_id + k: i for k, i in enumerate(chunk)}
                    self._next_id += len(chunk)
                    ids.update(chunk_ids)
                    remaining.update(chunk)
                    template.send(self._wire(chunk_ids, prepared))
                if not remaining:
                    continue
                events = template.poll(1.0)
                now = time.monotonic()
                if events:
                    last_event = now
                elif now - last_event > silence:
                    raise TemplateDied("the sandbox template stopped answering")
                finished = 0
                for event in events:
                    index = ids.get(event[1], -1)
                    if event[0] == "s" and index in remaining:
                        started[index] = event[2]
                        self.last_pids.append(event[2])
                    elif event[0] == "r" and index in remaining:
                        _, _, status, output, error, duration = event
                        try:
                            verdict = Verdict(status)
                        except ValueError:  # the template vets statuses; this only guards the batch against a bug
                            verdict, output, error = Verdict.RUNTIME_ERROR, None, f"unknown sandbox status {status!r}"
                        raw = ExecResult(verdict, output=output, error=error, duration=duration)
                        results[index] = self._postcheck(raw)
                        remaining.discard(index)
                        started.pop(index, None)
                        finished += 1
                if finished and on_done is not None:
                    on_done(finished)
        except TemplateDied as err:
            logger.warning("The sandbox template died (%s); restarting it.", err)
            running = [i for i in remaining if i in started]
            self._restart(list(started.values()))
            return sorted(running), sorted(i for i in remaining if i not in started)
        except BaseException:
            # Interrupted (KeyboardInterrupt...): stop this batch's programs; the next run starts a fresh template.
            if self._template is not None:
                self._template.kill()
                self._template.stop(wait=1.0)
                self._template = None
            for pid in started.values():
                kill_orphan_group(pid)
            raise
        return [], []

    @property
    def template_pid(self) -> int | None:
        """Pid of the current template process (for tests and diagnostics)."""
        return self._template.pid if self._template is not None else None
