"""Induction: input/output pairs + a message -> the program.

The proposer writes no code: it is given one program from the deduction/abduction buffers and asked for N inputs and
a message. The executor runs the program on every input; the first half of the pairs is shown to the solver and the
rest is hidden and used to check the solver's program.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from azr_trl.executor.base import Executor
from azr_trl.executor.types import ExecJob, ExecResult
from azr_trl.executor.values import literal_equal

from .base import Prompt, Proposal, SolverAnswer, TaskSpec, call_job, check_lengths
from .parsing import INPUT_CALL, grades_on_one_line, import_lines, input_shape, prepare_program
from .prompts import INPUT_MARKER, fence, program_requirements, render
from .task import Task, zero_induction_task


def split_pairs(task: Task) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(visible, hidden)`` input/output pairs of an induction task: the first ``len // 2`` pairs are visible."""
    pairs = list(zip(task.inputs, task.outputs, strict=False))
    half = len(pairs) // 2
    return pairs[:half], pairs[half:]


def _leaks_program(message: str, program: str) -> bool:
    """Whether the message quotes the program (its whole text, or the line defining ``f``)."""
    squeeze = "".join(message.split())
    if "".join(program.split()) in squeeze:
        return True
    def_lines = [line.strip() for line in program.splitlines() if line.strip().startswith("def f(")]
    return any("".join(line.split()) in squeeze for line in def_lines)


INPUT_RULES: tuple[str, ...] = ("exact", "last_n")


class InductionSpec(TaskSpec):
    """Induction: the solver sees half of the input/output pairs and a message, and writes ``f``.

    Args (besides :class:`TaskSpec`'s):
        inputs_rule: ``"exact"``: a proposal must give exactly ``num_inputs`` input blocks (paper); ``"last_n"``: at
            least ``num_inputs``, of which the last ``num_inputs`` are kept (reference code).
        reject_duplicate_inputs: reject a proposal that repeats an input (paper prompt; the reference does not check).
        reject_message_leaks: reject a message that copies the program (paper prompt; the reference does not check).
    """

    task_type = "induction"

    def __init__(
        self,
        *args: Any,
        inputs_rule: str = "exact",
        reject_duplicate_inputs: bool = True,
        reject_message_leaks: bool = True,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        if inputs_rule not in INPUT_RULES:
            raise ValueError(f"inputs_rule={inputs_rule!r}: use one of {list(INPUT_RULES)}.")
        self.inputs_rule = inputs_rule
        self.reject_duplicate_inputs = reject_duplicate_inputs
        self.reject_message_leaks = reject_message_leaks

    @classmethod
    def zero_task(cls) -> Task:
        return zero_induction_task()

    # ----- propose -----
    def propose_prompt(self, references: Sequence[Task], fmt: str) -> Prompt:
        if not references:
            raise ValueError("The induction propose prompt needs one reference task holding the program.")
        n = self.num_inputs
        content = "\n".join(
            [
                f"## Task: Choose {n} Inputs for the Program Below and Write a Message About It",
                "",
                f"Take the program below and choose {n} inputs for it that make it produce a varied set of outputs, "
                "then write a message about the program. Someone will see some of your inputs with the outputs they "
                "produce, plus your message, and must reconstruct the program from them, like a puzzle. Choose "
                "inputs and a message that make this possible but not trivial.",
                "",
                "### Input Requirements",
                f"- Give exactly {n} different inputs, each in its own ```input block.",
                "- Each input is the argument list of one call to `f`: Python literals separated by commas, strings "
                "in quotes.",
                "",
                "### Message Requirements",
                "- Give one ```message block: a hint or a short problem statement that helps someone reconstruct "
                "the program.",
                "- Do not copy the program into the message.",
                "",
                "### Answer Format",
                "<answer>",
                fence("input", "'apple', 3"),
                fence("input", "'kiwi', 0"),
                f"(... one ```input block for each of the {n} inputs)",
                fence("message", "The function transforms a word according to a number."),
                "</answer>",
                "",
                "### What Makes a Good Answer",
                "- Every input runs without errors.",
                "- Coverage: the inputs and their outputs together reveal what the program does.",
                "- Variety: the inputs differ from each other and exercise different behaviour.",
                "- Challenge: reconstructing the program takes thought, but it is possible.",
                "",
                "### Program",
                fence("python", references[0].program.rstrip("\n") + "\n\n" + INPUT_MARKER),
            ]
        )
        return render(content, fmt)

    def parse_proposal(self, completion: str, references: Sequence[Task] = (), require_think: bool = True) -> Proposal:
        if not references:
            raise ValueError("Parsing an induction proposal needs the reference task holding the program.")
        return super().parse_proposal(completion, references, require_think)

    def read_proposal(self, answer: str, references: Sequence[Task] = ()) -> Proposal:
        if not references:
            raise ValueError("Parsing an induction proposal needs the reference task holding the program.")
        program = references[0].program
        input_texts, message = self.reader.inputs_and_message(answer)
        if not input_texts:
            return Proposal(False, "missing_input")
        if message is None:
            return Proposal(False, "missing_message")
        if len(input_texts) < self.num_inputs or (self.inputs_rule == "exact" and len(input_texts) > self.num_inputs):
            return Proposal(True, "wrong_input_count")
        inputs: list[str] = []
        for text in input_texts[-self.num_inputs :]:
            src, error = self.proposal_input(text)
            if src is None:
                return Proposal(True, error)
            inputs.append(src)
        if self.reject_duplicate_inputs and len({input_shape(src) for src in inputs}) != len(inputs):
            return Proposal(True, "duplicate_inputs")
        if self.reject_message_leaks and _leaks_program(message, program):
            return Proposal(True, "message_leaks_program")
        return Proposal(True, None, Task(task_type="induction", program=program, inputs=inputs, message=message))

    def validation_jobs(self, candidate: Task) -> list[ExecJob]:
        return [call_job(candidate.program, src, self.pasted_inputs) for src in candidate.inputs]

    def finish_validation(self, candidate: Task, results: Sequence[ExecResult]) -> tuple[Task | None, str]:
        if len(results) != len(candidate.inputs):
            raise ValueError(f"Induction validation expects {len(candidate.inputs)} results, got {len(results)}.")
        for result in results:  # any failing input invalidates the whole proposal
            if not result.ok:
                return None, str(result.status)
        task = Task(
            task_type="induction",
            program=candidate.program,
            inputs=list(candidate.inputs),
            outputs=[self.gold_output(r.output) for r in results],
            message=candidate.message,
            step=candidate.step,
            pinned=candidate.pinned,
            extra=dict(candidate.extra),
        )
        return task, "ok"

    # ----- solve -----
    def solve_prompt(self, task: Task, fmt: str) -> Prompt:
        visible, _ = split_pairs(task)
        pairs: list[str] = []
        for i, (src, out) in enumerate(visible):
            pairs += [fence(f"input_{i}", src), fence(f"output_{i}", out)]
        content = "\n".join(
            [
                "# Task: Reconstruct a Python Function from Input/Output Examples",
                "Below are inputs, the outputs a hidden function `f` returned for them, and a message about the "
                "function. Work out step by step what the function does and write it. It will be tested on further "
                "inputs whose outputs you do not see, so write the general rule, not a lookup table. Check your "
                "function against every example before answering, and revise it if one does not match.",
                "",
                program_requirements("# Program Requirements"),
                "",
                "# Examples",
                *pairs,
                "",
                "# Message",
                fence("message", task.message or ""),
                "",
                "# Answer Format",
                "Put your program in a ```python block inside <answer>:",
                "<answer>",
                fence("python", "def f(word: str, n: int):\n    ...\n    return result"),
                "</answer>",
                "The entry function must be named `f`.",
            ]
        )
        return render(content, fmt)

    def parse_answer(self, completion: str, require_think: bool = True, monte_carlo: bool = False) -> SolverAnswer:
        envelope = self.reader.envelope(completion, require_think, monte_carlo)
        code = self.reader.answer_program(envelope.answer) if envelope.answer is not None else None
        if code is None:
            return SolverAnswer(False, None, envelope.error or "missing_program")
        if self.answer_extraction == "reference":
            # Run as written, as the reference does: no renamed entry function, no dropped example calls.
            return SolverAnswer(envelope.format_ok, code, envelope.error)
        # A program that fails cleaning stays as written: well formatted, and the executor will reject it.
        program, _ = prepare_program(code, self.solver_program_options)
        return SolverAnswer(envelope.format_ok, program if program is not None else code, envelope.error)

    def score(self, executor: Any, tasks: Sequence[Task], answers: Sequence[SolverAnswer]) -> list[float]:
        """Fraction of hidden pairs each answer reproduces (one executor batch)."""
        hidden = [split_pairs(t)[1] for t in tasks]
        programs = [a.answer for a in answers]
        if self.reject_input_calls:
            # The reference's executor refuses to run an answer containing `input(`.
            programs = [None if p is None or INPUT_CALL in p else p for p in programs]
        if self.answer_extraction == "reference":
            # The reference runs an answer below the gold program's import lines: `math.floor` needs no import.
            programs = [
                None if p is None else "\n".join([*import_lines(t.program), p])
                for p, t in zip(programs, tasks, strict=True)
            ]
        return verify_induction(
            executor,
            programs,
            [[src for src, _ in pairs] for pairs in hidden],
            [[out for _, out in pairs] for pairs in hidden],
            self.value_equality,
            pasted_inputs=self.pasted_inputs,
        )

    def verify(self, executor: Any, tasks: Sequence[Task], answers: Sequence[SolverAnswer]) -> list[bool]:
        # Binary, like the reference's default: every hidden pair must match.
        return [s >= 1.0 for s in self.score(executor, tasks, answers)]


def verify_induction(
    executor: Executor,
    answer_programs: Sequence[str | None],
    hidden_inputs: Sequence[Sequence[str]],
    hidden_outputs: Sequence[Sequence[str]],
    equality: str = "typed",
    pasted_inputs: bool = False,
) -> list[float]:
    """Induction: each answer program runs on its task's hidden inputs (all in one batch); the score is the fraction
    of hidden pairs whose output it reproduces (``== 1.0`` is the reference's binary reward), compared under
    ``equality`` (see :mod:`azr_trl.executor.values`).

    The solver's program is checked for banned modules like a proposal. ``pasted_inputs``: inputs as the reference
    pastes them, so a hidden pair whose input does not fit on one grading line
    (:func:`~azr_trl.tasks.parsing.grades_on_one_line`) is never matched, and named arguments are passed by name.
    """
    check_lengths(answer_programs, hidden_inputs, hidden_outputs)
    spans: list[tuple[int, int, int, int]] = []  # (task, first job, number of jobs, number of hidden pairs)
    golds: list[list[str]] = []  # the gold outputs of each span's jobs
    jobs: list[ExecJob] = []
    for i, (program, inputs, outputs) in enumerate(zip(answer_programs, hidden_inputs, hidden_outputs, strict=True)):
        if len(inputs) != len(outputs):
            raise ValueError(f"task {i}: {len(inputs)} hidden inputs but {len(outputs)} hidden outputs")
        if program is None or not inputs:
            continue
        gradable = [
            (x, gold) for x, gold in zip(inputs, outputs, strict=True) if not pasted_inputs or grades_on_one_line(x)
        ]
        spans.append((i, len(jobs), len(gradable), len(inputs)))
        jobs.extend(call_job(program, x, pasted_inputs, check_banned=True, determinism_runs=1) for x, _ in gradable)
        golds.append([gold for _, gold in gradable])
    results = executor.run(jobs)
    scores = [0.0] * len(answer_programs)
    for (i, first, count, total), gold_outputs in zip(spans, golds, strict=True):
        matched = sum(
            result.ok and literal_equal(result.output, gold, equality=equality)
            for result, gold in zip(results[first : first + count], gold_outputs, strict=True)
        )
        scores[i] = matched / total
    return scores
