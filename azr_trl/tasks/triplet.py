"""Deduction (program + input -> output) and abduction (program + output -> input).

Both proposers write the same thing, a program and one input; the executor computes the gold output. They differ in
the wording of the proposer's goal, in the buffer the task goes to, and in what the solver is shown and asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from azr_trl.executor.base import Executor
from azr_trl.executor.checks import keyword_args, parse_args
from azr_trl.executor.types import ExecJob, ExecResult
from azr_trl.executor.values import literal_equal

from .base import Prompt, Proposal, SolverAnswer, TaskSpec, call_job, check_lengths
from .parsing import grades_on_one_line, prepare_input, prepare_program, unwrap_call
from .prompts import banned_words_line, fence, program_requirements, render, snippet
from .task import Task


_EXAMPLE_PROGRAM = """def f(names: list, bonus: int):
    scores = {}
    for i, name in enumerate(names):
        scores[name] = len(name) * (i + 1) + bonus
    return sorted(scores.items(), key=lambda kv: -kv[1])"""
_EXAMPLE_INPUT = "['Ada', 'Linus'], 3"


class _TripletSpec(TaskSpec):
    """Shared proposer side and validation of the two triplet task types."""

    # (what the solver is given, what the solver must find, why the task is hard) — set by subclasses
    _given: str = ""
    _asked: str = ""
    _difficulty: str = ""
    # The solver prompt: its title and instruction, the task field shown besides the program ("input" or "output"),
    # and the block the answer goes in with an example of it — set by subclasses
    _solve_title: str = ""
    _solve_instruction: str = ""
    _shown: str = ""
    _answer_block: str = ""
    _answer_example: str = ""

    # ----- propose -----
    def propose_prompt(self, references: Sequence[Task], fmt: str) -> Prompt:
        lines = [
            "## Task: Write a New Python Program with One Test Input",
            "",
            f"Write a new, original Python program and one input for it. Someone will be shown the program and "
            f"{self._given}, and asked to work out {self._asked}. Make the program demand careful, multi-step "
            f"reasoning to do that. Helper functions and classes are allowed; define them above or inside `f`.",
            "",
            program_requirements("### Program Requirements"),
            "",
            "### Input Requirements",
            "- Give exactly one input: the arguments of one call to `f`, separated by commas.",
            "- Write every argument as a Python literal: numbers, quoted strings, lists, tuples, dicts, sets, "
            "True/False or None.",
            "",
            "### Answer Format",
            "Inside <answer>, put the program in a ```python block and the input in an ```input block, e.g.:",
            "<answer>",
            fence("python", _EXAMPLE_PROGRAM),
            "",
            fence("input", _EXAMPLE_INPUT),
            "</answer>",
            "",
            "### What Makes a Good Task",
            "- It runs without errors on its input.",
            f"- Difficulty: {self._difficulty}",
            "- Novelty: it is clearly different from the reference programs below.",
            banned_words_line(self.banned_modules),
            "",
            "Plan the program first, then write it and its input.",
        ]
        if references:
            lines += ["", "### Reference Programs"]
            lines += [snippet(i, r.program, r.input, r.output) for i, r in enumerate(references)]
        return render("\n".join(lines), fmt)

    def read_proposal(self, answer: str, references: Sequence[Task] = ()) -> Proposal:
        code, input_text = self.reader.program_and_input(answer)
        if code is None:
            return Proposal(False, "missing_program")
        if input_text is None:
            return Proposal(False, "missing_input")
        program, error = prepare_program(code, self.program_options)
        if program is None:
            return Proposal(True, error)
        input_src, error = self.proposal_input(input_text)
        if input_src is None:
            return Proposal(True, error)
        return Proposal(True, None, Task(task_type=self.task_type, program=program, input=input_src))

    def validation_jobs(self, candidate: Task) -> list[ExecJob]:
        return [call_job(candidate.program, candidate.input or "", self.pasted_inputs)]

    def finish_validation(self, candidate: Task, results: Sequence[ExecResult]) -> tuple[Task | None, str]:
        if len(results) != 1:
            raise ValueError(f"{self.task_type} validation expects 1 result, got {len(results)}.")
        result = results[0]
        if not result.ok:
            return None, str(result.status)
        task = Task(
            task_type=self.task_type,
            program=candidate.program,
            input=candidate.input,
            output=self.gold_output(result.output),
            step=candidate.step,
            pinned=candidate.pinned,
            extra=dict(candidate.extra),
        )
        return task, "ok"

    # ----- solve -----
    def solve_prompt(self, task: Task, fmt: str) -> Prompt:
        content = "\n".join(
            [
                f"# Task: {self._solve_title}",
                self._solve_instruction,
                "",
                "# Program",
                fence("python", task.program),
                "",
                f"# {self._shown.title()}",
                fence(self._shown, getattr(task, self._shown) or ""),
                "",
                "# Answer Format",
                "<answer>",
                fence(self._answer_block, self._answer_example),
                "</answer>",
            ]
        )
        return render(content, fmt)

    def _read_answer(self, completion: str, require_think: bool, monte_carlo: bool):
        """The completion's envelope and the text of its predicted value (None when there is none)."""
        envelope = self.reader.envelope(completion, require_think, monte_carlo)
        if envelope.answer is None:
            return envelope, None
        return envelope, self.reader.answer_value(envelope.answer, self._answer_block)


class DeductionSpec(_TripletSpec):
    """Deduction: the solver sees the program and the input and predicts the output."""

    task_type = "deduction"
    _given = "your input"
    _asked = "the output it produces"
    _difficulty = "predicting the output from the input takes several careful steps of tracing."
    _solve_title = "Predict the Output of a Python Program for a Given Input"
    _solve_instruction = (
        "Read the program and the input, trace the execution step by step, and give the value that `f` returns for "
        "this input. Write it in an ```output block as a Python literal: quote strings, and write several returned "
        "values as a tuple."
    )
    _shown, _answer_block, _answer_example = "input", "output", "{'total': 7, 'names': ['Ada', 'Linus']}"

    def parse_answer(self, completion: str, require_think: bool = True, monte_carlo: bool = False) -> SolverAnswer:
        envelope, answer = self._read_answer(completion, require_think, monte_carlo)
        if envelope.format_ok and answer is None:
            return SolverAnswer(False, None, "missing_output")
        return SolverAnswer(envelope.format_ok, answer, envelope.error)

    def verify(self, executor: Any, tasks: Sequence[Task], answers: Sequence[SolverAnswer]) -> list[bool]:
        return verify_deduction([a.answer for a in answers], [t.output or "" for t in tasks], self.value_equality)


class AbductionSpec(_TripletSpec):
    """Abduction: the solver sees the program and the output and gives any input that produces it."""

    task_type = "abduction"
    _given = "the output of your input"
    _asked = "an input that produces this output"
    _difficulty = "finding an input that produces the output means reasoning backwards through the program."
    _solve_title = "Find an Input that Makes a Python Program Return a Given Output"
    _solve_instruction = (
        "Read the program and the output, reason backwards step by step, and give an input for which `f` returns "
        "exactly this output. Any such input is accepted. Write the arguments of the call in an ```input block as "
        "Python literals separated by commas."
    )
    _shown, _answer_block, _answer_example = "output", "input", "'some text', [1, 2, 3]"

    def parse_answer(self, completion: str, require_think: bool = True, monte_carlo: bool = False) -> SolverAnswer:
        envelope, text = self._read_answer(completion, require_think, monte_carlo)
        if text is None:
            return SolverAnswer(False, None, envelope.error or "missing_input")
        # An answer that is not a literal argument list stays as written: it is well formatted, just wrong.
        src, _ = prepare_input(text, keep_call=self.keep_calls)
        # Pasted as the reference pastes it, the answer must fit on its one grading line (as read, before any strip).
        gradable = not self.pasted_inputs or grades_on_one_line(text)
        answer = src if src is not None else text.strip()
        return SolverAnswer(envelope.format_ok, answer, envelope.error, gradable=gradable)

    def verify(self, executor: Any, tasks: Sequence[Task], answers: Sequence[SolverAnswer]) -> list[bool]:
        return verify_abduction(
            executor,
            [t.program for t in tasks],
            [a.answer if a.gradable else None for a in answers],
            [t.output or "" for t in tasks],
            self.value_equality,
            pasted=self.pasted_inputs,
        )


def verify_deduction(
    answers: Sequence[str | None], gold_outputs: Sequence[str], equality: str = "typed"
) -> list[bool]:
    """Deduction: the predicted output must equal the gold output as a value (``equality``: see
    :mod:`azr_trl.executor.values`). Runs no code."""
    check_lengths(answers, gold_outputs)
    return [literal_equal(answer, gold, equality=equality) for answer, gold in zip(answers, gold_outputs, strict=True)]


def verify_abduction(
    executor: Executor,
    programs: Sequence[str],
    answers: Sequence[str | None],
    gold_outputs: Sequence[str],
    equality: str = "typed",
    pasted: bool = False,
) -> list[bool]:
    """Abduction: ``f(answer)`` is run in the sandbox (one batch) and must equal the gold output (``equality``: see
    :mod:`azr_trl.executor.values`). ``pasted`` (``pasted_inputs``): an answer may name arguments, ``x=[1, 2]``,
    its values still literals.

    Any input that reproduces the gold output is correct, as in the reference; an answer that is not a list of
    literals is wrong without running anything. An answer kept as a call, ``f(args)`` (``call_wrapped_inputs: nest``),
    runs as ``f(f(args))``.
    """
    check_lengths(programs, answers, gold_outputs)
    slots: list[int] = []
    jobs: list[ExecJob] = []
    for i, (program, answer) in enumerate(zip(programs, answers, strict=True)):
        args = None if answer is None else unwrap_call(answer) or answer
        runnable = args is not None and (
            parse_args(args, executor.config.max_input_chars) is not None
            or (pasted and keyword_args(args, executor.config.max_input_chars) is not None)
        )
        if runnable:
            slots.append(i)
            # The task's program was validated (banned modules, determinism) when it was proposed.
            jobs.append(call_job(program, answer, pasted, check_banned=False, determinism_runs=1))
    correct = [False] * len(programs)
    for i, result in zip(slots, executor.run(jobs), strict=True):
        correct[i] = result.ok and literal_equal(result.output, gold_outputs[i], equality=equality)
    return correct
