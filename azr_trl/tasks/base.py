"""What every task type provides: prompts for both roles, parsers, validation glue and solver verification."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from azr_trl.executor.checks import parse_args
from azr_trl.executor.types import REFERENCE_BANNED_MODULES, ExecJob, ExecResult
from azr_trl.executor.values import VALUE_EQUALITIES, truncate_output

from .parsing import ENTRY_RENAMES, ProgramOptions, prepare_input, unwrap_call
from .reading import get_reader
from .task import Task, zero_triplet


Prompt = str | list[dict[str, Any]]

# An input written as a call, ``f(x)``: ``unwrap`` reads the input ``x``; ``nest`` keeps the call, which then runs as
# ``f(f(x))`` as the reference's templates run it.
CALL_WRAPPED_INPUTS: tuple[str, ...] = ("unwrap", "nest")
NESTED_ENTRY = "_azr_f_of_f"
# The entry that calls ``f`` on an input pasted into the program (``pasted_inputs``), see :func:`call_job`.
PASTED_ENTRY = "_azr_f_of_pasted"


@dataclass
class Proposal:
    """A parsed proposer completion.

    ``format_ok`` covers the think/answer tags and the required fenced blocks. ``error`` names the first problem found
    (``None`` when the candidate is ready for the executor): a tag error (``missing_answer``, ``unclosed_answer``,
    ``missing_think``, ``misordered_tags``, ``unclosed_think``), a missing block (``missing_program``,
    ``missing_input``, ``missing_message``), or a content error (``syntax_error``, ``no_entry_function``,
    ``multiple_functions``, ``program_too_long``, ``program_too_deep``, ``invalid_input``, ``empty_input``, ``input_too_long``,
    ``input_comment``, ``input_call``, ``wrong_input_count``, ``duplicate_inputs``, ``message_leaks_program``). ``candidate`` is a task without gold
    output(s), set only when there is no error, or with ``keep_badly_formatted_tasks`` when the tags alone are wrong
    (``format_ok`` False, ``error`` the tag error): validated and buffered, its proposer still gets the format reward.
    """

    format_ok: bool
    error: str | None = None
    candidate: Task | None = None

    @property
    def ok(self) -> bool:
        return self.candidate is not None


@dataclass
class SolverAnswer:
    """A parsed solver completion: ``answer`` is the literal source (deduction/abduction) or the program (induction).

    The answer is extracted even from a badly formatted completion when possible; rewards check ``format_ok`` first.
    ``gradable`` is False for an answer that can never be graded correct whatever its value (``pasted_inputs``: an
    abduction answer that does not fit on the reference's one grading line).
    """

    format_ok: bool
    answer: str | None = None
    error: str | None = None
    gradable: bool = True


class TaskSpec(abc.ABC):
    """One AZR task type, for both roles.

    Args:
        num_inputs: inputs an induction proposal must give (N; the first half is shown to the solver).
        reject_multiple_functions: reject programs with more than one ``def`` (reference Qwen2.5 setting).
        banned_modules: modules listed as forbidden in the propose prompt (the executor enforces its own list).
        rename_entry: ``"last"``/``"first"`` top-level function renamed to ``f`` when there is no ``f``; ``None``
            rejects such programs.
        strip_top_level_code: drop example calls/prints and ``__main__`` blocks from proposed programs; None: only
            under ``answer_extraction="strict"`` (the reference runs a program as written).
        answer_extraction: where the parts of a completion are read, for both roles and the Monte-Carlo rollouts:
            ``"reference"`` (where the reference code reads them) or ``"strict"`` (fenced blocks only). See
            :mod:`azr_trl.tasks.reading`.
        call_wrapped_inputs: an input written as a call, ``f(x)`` (a proposal's input, an abduction answer):
            ``"unwrap"`` reads ``x``; ``"nest"`` keeps the call, run as ``f(f(x))`` like the reference runs it.
        value_equality: how answers are compared with gold values: ``"typed"`` (a bool is no number) or ``"python"``
            (Python's ``==``, ``True == 1``), see :mod:`azr_trl.executor.values`.
        pasted_inputs: inputs work as the reference pastes them into one line of program text, ``f(<input>)``: a
            proposal's input may name arguments or be an expression (``[1] + [2]``, run in the sandbox with the
            program), an abduction answer may name arguments (its values stay literals), an input ending in a
            ``# comment`` is invalid, and an abduction answer or an induction hidden input that spans lines is never
            graded correct (see :func:`~azr_trl.tasks.parsing.grades_on_one_line`).
        truncate_outputs: gold outputs longer than this many characters are cut as the reference's executor cuts
            them (:func:`~azr_trl.executor.values.truncate_output`); 0 keeps them whole.
        reject_input_calls: a program (or a proposal input) containing the text ``input(`` is refused, and an
            induction answer containing it is wrong, as the reference's executor refuses to run such code.
        entry_rename: ``"token"`` or ``"text"`` (the reference's regex rename), see
            :class:`~azr_trl.tasks.parsing.ProgramOptions` ``rename_by``.
        keep_badly_formatted_tasks: a proposal whose think/answer tags are wrong still yields its candidate task
            (see :class:`Proposal`), as the reference's buffer takes every valid program whatever the format.
    """

    task_type: str = ""

    def __init__(
        self,
        num_inputs: int = 10,
        reject_multiple_functions: bool = False,
        banned_modules: Sequence[str] = REFERENCE_BANNED_MODULES,
        rename_entry: str | None = "last",
        strip_top_level_code: bool | None = None,
        answer_extraction: str = "reference",
        call_wrapped_inputs: str = "unwrap",
        value_equality: str = "typed",
        pasted_inputs: bool = False,
        truncate_outputs: int = 0,
        reject_input_calls: bool = False,
        entry_rename: str = "token",
        keep_badly_formatted_tasks: bool = False,
    ):
        self.reader = get_reader(answer_extraction)
        self.answer_extraction = answer_extraction
        if call_wrapped_inputs not in CALL_WRAPPED_INPUTS:
            raise ValueError(f"call_wrapped_inputs={call_wrapped_inputs!r}: use one of {list(CALL_WRAPPED_INPUTS)}.")
        self.keep_calls = call_wrapped_inputs == "nest"
        if value_equality not in VALUE_EQUALITIES:
            raise ValueError(f"value_equality={value_equality!r}: use one of {list(VALUE_EQUALITIES)}.")
        self.value_equality = value_equality
        if entry_rename not in ENTRY_RENAMES:
            raise ValueError(f"entry_rename={entry_rename!r}: use one of {list(ENTRY_RENAMES)}.")
        if truncate_outputs < 0:
            raise ValueError(f"truncate_outputs={truncate_outputs}: use 0 (keep outputs whole) or a positive length.")
        self.pasted_inputs = bool(pasted_inputs)
        self.truncate_outputs = int(truncate_outputs)
        self.reject_input_calls = bool(reject_input_calls)
        self.keep_badly_formatted_tasks = bool(keep_badly_formatted_tasks)
        if strip_top_level_code is None:
            # The reference runs a proposed program as written, example calls and prints included.
            strip_top_level_code = answer_extraction != "reference"
        if rename_entry not in ("last", "first", None):
            raise ValueError(f"rename_entry={rename_entry!r}: use 'last', 'first' or None.")
        if num_inputs < 2:
            raise ValueError(f"num_inputs={num_inputs}: induction needs at least 2 inputs (half shown, half hidden).")
        self.num_inputs = num_inputs
        self.banned_modules = tuple(banned_modules)
        self.program_options = ProgramOptions(
            rename_entry=rename_entry,
            reject_multiple_functions=reject_multiple_functions,
            strip_top_level_code=strip_top_level_code,
            rename_by=entry_rename,
            reject_input_calls=self.reject_input_calls,
        )
        # Under strict the solver's program is cleaned the same way (never punished for helpers); the reference reader
        # runs it as written.
        self.solver_program_options = ProgramOptions(rename_entry=rename_entry, strip_top_level_code=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_inputs={self.num_inputs})"

    @classmethod
    def zero_task(cls) -> Task:
        """The smallest valid task of this type (with its gold output): what an empty buffer starts from, and what
        the shortest prompts are measured on. The paper's triplet types start from the identity program."""
        return zero_triplet(cls.task_type)

    def proposal_input(self, text: str) -> tuple[str | None, str | None]:
        """A proposal's input checked under this spec's input settings, see
        :func:`~azr_trl.tasks.parsing.prepare_input`."""
        return prepare_input(
            text, keep_call=self.keep_calls, pasted=self.pasted_inputs, reject_input_calls=self.reject_input_calls
        )

    def gold_output(self, output: str | None) -> str:
        """A validated program's output as the task keeps it (cut under ``truncate_outputs``)."""
        return truncate_output(output or "", self.truncate_outputs)

    # ----- propose -----
    @abc.abstractmethod
    def propose_prompt(self, references: Sequence[Task], fmt: str) -> Prompt:
        """The proposer prompt. Deduction/abduction: K reference triplets; induction: ``[one program task]``."""

    def parse_proposal(self, completion: str, references: Sequence[Task], require_think: bool = True) -> Proposal:
        """Read a proposer completion into a candidate task (no gold output yet): its envelope, then its answer.

        A completion whose think/answer tags are wrong gets no candidate, however good its answer, unless
        ``keep_badly_formatted_tasks``: then its answer is read all the same (``format_ok`` stays False).
        """
        envelope = self.reader.envelope(completion, require_think)
        if not envelope.format_ok:
            if self.keep_badly_formatted_tasks and envelope.answer is not None:
                return Proposal(False, envelope.error, self.read_proposal(envelope.answer, references).candidate)
            return Proposal(False, envelope.error)
        return self.read_proposal(envelope.answer or "", references)

    @abc.abstractmethod
    def read_proposal(self, answer: str, references: Sequence[Task]) -> Proposal:
        """Read the ``<answer>`` text of a proposal into a candidate task (its envelope is not looked at)."""

    @abc.abstractmethod
    def validation_jobs(self, candidate: Task) -> list[ExecJob]:
        """The executor jobs that validate ``candidate`` and compute its gold output(s)."""

    @abc.abstractmethod
    def finish_validation(self, candidate: Task, results: Sequence[ExecResult]) -> tuple[Task | None, str]:
        """Turn the results of :meth:`validation_jobs` into ``(valid task with gold output(s) or None, verdict)``."""

    # ----- solve -----
    @abc.abstractmethod
    def solve_prompt(self, task: Task, fmt: str) -> Prompt:
        """The solver prompt for a validated task."""

    @abc.abstractmethod
    def parse_answer(self, completion: str, require_think: bool = True, monte_carlo: bool = False) -> SolverAnswer:
        """Read a solver completion; ``monte_carlo``: a rollout that only measures a proposal's solve rate (no format
        requirement; see :meth:`~azr_trl.tasks.reading.CompletionReader.envelope`)."""

    @abc.abstractmethod
    def verify(self, executor: Any, tasks: Sequence[Task], answers: Sequence[SolverAnswer]) -> list[bool]:
        """Whether each answer solves its task (one executor batch at most). Format is not checked here."""

    def score(self, executor: Any, tasks: Sequence[Task], answers: Sequence[SolverAnswer]) -> list[float]:
        """Per-answer score in [0, 1]: 1.0/0.0 from :meth:`verify` (induction: the fraction of hidden pairs matched)."""
        return [float(ok) for ok in self.verify(executor, tasks, answers)]


def call_job(program: str, input_src: str, pasted: bool = False, **options: Any) -> ExecJob:
    """The executor job that calls ``f`` on an input: an argument list of literals (``'ab', [1, 2]``), or one kept as a
    call, ``f(args)``, which runs ``f(f(args))``.

    ``pasted`` (``pasted_inputs``): any other input parsing accepted (named arguments ``xs=[3, 1]``, expressions such
    as ``[1] + [2]``) is pasted into the program as the reference pastes it, ``return f(<input>)`` in an entry of its
    own, and so evaluated in the sandbox with the program, never in this process.
    """
    inner = unwrap_call(input_src)
    if pasted and parse_args(input_src if inner is None else inner) is None:
        wrapped = f"{program.rstrip()}\n\n\ndef {PASTED_ENTRY}():\n    return f({input_src})\n"
        return ExecJob(wrapped, "", entry=PASTED_ENTRY, **options)
    if inner is None:
        return ExecJob(program, input_src, **options)
    nested = f"{program.rstrip()}\n\n\ndef {NESTED_ENTRY}(*args):\n    return f(f(*args))\n"
    return ExecJob(nested, inner, entry=NESTED_ENTRY, **options)


def run_validation(
    executor: Any, items: Sequence[tuple[TaskSpec, Task]], progress: bool = False
) -> list[tuple[Task | None, str, str | None]]:
    """Validate candidates of any task types in ONE executor batch.

    Returns ``(task or None, verdict, error detail)`` per item; the detail is the first failing job's error text.
    """
    jobs: list[ExecJob] = []
    spans: list[tuple[int, int]] = []
    for spec, candidate in items:
        item_jobs = spec.validation_jobs(candidate)
        spans.append((len(jobs), len(jobs) + len(item_jobs)))
        jobs.extend(item_jobs)
    results = executor.run(jobs, progress=progress) if jobs else []
    if len(results) != len(jobs):
        raise RuntimeError(f"The executor returned {len(results)} results for {len(jobs)} jobs.")
    out: list[tuple[Task | None, str, str | None]] = []
    for (spec, candidate), (a, b) in zip(items, spans, strict=True):
        task, verdict = spec.finish_validation(candidate, results[a:b])
        detail = next((r.error for r in results[a:b] if not r.ok), None)
        out.append((task, verdict, detail))
    return out


def validate_candidates(
    executor: Any, items: Sequence[tuple[TaskSpec, Task]], progress: bool = False
) -> list[tuple[Task | None, str]]:
    """Validate candidates of any task types in ONE executor batch; returns ``(task or None, verdict)`` per item."""
    return [(task, verdict) for task, verdict, _ in run_validation(executor, items, progress)]


def check_lengths(*sequences: Sequence) -> None:
    """Raise ``ValueError`` unless the parallel sequences a verifier gets (tasks, answers, gold values) match."""
    lengths = {len(s) for s in sequences}
    if len(lengths) > 1:
        raise ValueError(f"argument lengths differ: {[len(s) for s in sequences]}")
