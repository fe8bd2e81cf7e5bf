"""`TaskFamily`: a constrained program space with its own generator, played like deduction.

The paper's task types let the proposer write any Python program. A family narrows that space so that the problems
stay within a small model's reach (a reproduction of AZR on a 3B model saw learning only after such a restriction):

- the proposer is asked for a program *of the family* and one input; a program or input outside the family is refused
  at parse time (``outside_family`` / ``input_outside_family``), so it earns the invalid-proposal reward;
- the solver predicts the output, as in deduction, and is graded the same way;
- the family generates its own seed tasks and a fixed held-out set at a difficulty knob, disjoint by construction:
  seeds skip every task of the held-out pool, so no held-out task is ever in the buffer through seeding.

A subclass sets ``task_type`` and the text that describes the family, and implements :meth:`sample_task` (one
random task at ``self.difficulty``) and :meth:`check_candidate`. Register it by name (``register_task_type``, an
entry point of the group ``azr_trl.task_types``, or ``module:Class`` in a recipe's ``task_types``).
"""

from __future__ import annotations

import abc
import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..base import Prompt, Proposal, SolverAnswer
from ..prompts import fence, render, snippet
from ..reading import fenced_blocks
from ..task import Task
from ..triplet import DeductionSpec


# How a chat prompt ends. The content already shows a whole reply, and small models copy a note's placeholders
# ("<think> reasoning here </think>") instead of following them, so the propose note only points at the example. The
# solve note names the two tags: pointing at the example alone made Qwen2.5-Coder-0.5B copy the example's program block
# instead of answering (0 of 200 answers formatted, against 31% correct with this note).
_REPLY_NOTE = "Reply in exactly the same format as the example."
_SOLVE_NOTE = "Reply as in the example: your trace inside <think> </think>, then the output inside <answer> </answer>."


class TaskFamily(DeductionSpec, abc.ABC):
    """A deduction-style task type over a constrained program space (see the module docstring).

    Parameters:
        difficulty: the family's difficulty knob (e.g. the number of operations); ``None`` uses
            ``default_difficulty``. It sets the seed tasks, the held-out tasks and what the propose prompt asks for.
        num_seed_tasks: seed tasks the family contributes to its buffer at the start of training.

    Other arguments are :class:`~azr_trl.tasks.TaskSpec`'s.
    """

    #: Shown in the propose prompt's title, e.g. "Arithmetic Pipeline".
    family_title: str = ""
    #: Bullet lines that define the family for the proposer (programs outside them are refused).
    family_rules: tuple[str, ...] = ()
    #: What the solver is asked to do, and one worked example shown before its task:
    #: (program, input, the reasoning written inside <think>, the output).
    solve_instruction: str = ""
    worked_example: tuple[str, str, str, str] = ("", "", "", "")
    #: The one-line plan of the propose prompt's example reply (its program and input are the worked example's).
    propose_plan_example: str = ""
    default_difficulty: int = 1
    min_difficulty: int = 1
    max_difficulty: int = 1
    default_num_seed_tasks: int = 64
    #: Size of the held-out pool. Held-out sets are its first N tasks; seeds never come from it.
    heldout_pool_size: int = 1000

    def __init__(self, *args: Any, difficulty: int | None = None, num_seed_tasks: int | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        difficulty = self.default_difficulty if difficulty is None else int(difficulty)
        if not self.min_difficulty <= difficulty <= self.max_difficulty:
            raise ValueError(
                f"{self.task_type}: difficulty={difficulty} is outside [{self.min_difficulty}, {self.max_difficulty}]."
            )
        self.difficulty = difficulty
        self.num_seed_tasks = self.default_num_seed_tasks if num_seed_tasks is None else int(num_seed_tasks)
        if self.num_seed_tasks < 0:
            raise ValueError(f"{self.task_type}: num_seed_tasks must be at least 0, got {self.num_seed_tasks}.")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(difficulty={self.difficulty})"

    # ----- the family -----
    @abc.abstractmethod
    def sample_task(self, rng: random.Random) -> Task:
        """One random task of the family at ``self.difficulty``: program and input, no output (the executor computes
        it)."""

    @abc.abstractmethod
    def check_candidate(self, task: Task) -> str | None:
        """``None`` when ``task``'s program and input are inside the family, else an error name."""

    def check_output(self, output: str) -> str | None:
        """``None`` when a gold output (a repr) is acceptable, else an error name; every output by default."""
        return None

    def _distinct(
        self, rng: random.Random, count: int, exclude: set[str] = frozenset(), tries: int = 50
    ) -> list[Task]:
        tasks: list[Task] = []
        seen = set(exclude)
        for _ in range(count * tries):
            if len(tasks) == count:
                break
            task = self.sample_task(rng)
            key = task.key()
            if key not in seen:
                seen.add(key)
                tasks.append(task)
        return tasks

    def heldout_tasks(self, count: int | None = None) -> list[Task]:
        """The first ``count`` tasks of the family's fixed held-out pool at this difficulty (no outputs yet).

        The pool depends only on the family and the difficulty, so every run, machine and checkpoint sees the same
        held-out set.
        """
        pool = self._distinct(random.Random(f"{self.task_type}/heldout/{self.difficulty}"), self.heldout_pool_size)
        return pool[: len(pool) if count is None else count]

    def seed_tasks(self, count: int | None = None, seed: int = 0) -> list[Task]:
        """``count`` distinct pinned seed tasks (default ``num_seed_tasks``), none of them in the held-out pool."""
        count = self.num_seed_tasks if count is None else count
        heldout = {task.key() for task in self.heldout_tasks()}
        rng = random.Random(f"{self.task_type}/seeds/{self.difficulty}/{seed}")
        return [replace(task, pinned=True) for task in self._distinct(rng, count, exclude=heldout)]

    def with_outputs(self, executor: Any, tasks: Sequence[Task]) -> list[Task]:
        """``tasks`` with their gold outputs, computed in the sandbox in one batch; tasks the family refuses drop."""
        from ..base import validate_candidates

        return [task for task, _ in validate_candidates(executor, [(self, t) for t in tasks]) if task is not None]

    # ----- propose -----
    def propose_prompt(self, references: Sequence[Task], fmt: str) -> Prompt:
        program, input_src, _, _ = self.worked_example
        lines = [
            f"## Task: Write a New {self.family_title} Program and One Input for It",
            "",
            "Write a new program of the family below and one input for it. Someone will be shown the program and your "
            "input and asked to predict the output. Make the output hard, but possible, to work out by hand.",
            "",
            "### The Family (programs outside it are rejected)",
            *self.family_rules,
            f"- Aim for about {self.difficulty} operations.",
        ]
        if references:
            # Programs and inputs only: a reply imitates what the prompt shows, and an output block is not asked for.
            lines += ["", "### Reference Programs (write a different one)"]
            lines += [snippet(i, r.program, r.input, None) for i, r in enumerate(references)]
        lines += [
            "",
            "### Example Reply (a one-line plan, the program and its input, then stop)",
            f"<think> {self.propose_plan_example} </think>",
            "<answer>",
            fence("python", program),
            fence("input", input_src),
            "</answer>",
        ]
        return render("\n".join(lines), fmt, chat_note=_REPLY_NOTE)

    def parse_proposal(self, completion: str, references: Sequence[Task] = (), require_think: bool = True) -> Proposal:
        proposal = super().parse_proposal(completion, references, require_think)
        if proposal.candidate is None:
            return proposal
        error = self.check_candidate(proposal.candidate)
        if error is not None:
            return Proposal(proposal.format_ok, error)
        return proposal

    def finish_validation(self, candidate: Task, results):
        task, verdict = super().finish_validation(candidate, results)
        if task is not None:
            error = self.check_output(task.output or "")
            if error is not None:
                return None, error
        return task, verdict

    # ----- solve -----
    def solve_prompt(self, task: Task, fmt: str) -> Prompt:
        program, input_src, reasoning, output = self.worked_example
        content = "\n".join(
            [
                f"# Task: Predict the Output of the Program Below ({self.family_title})",
                self.solve_instruction,
                "",
                "# Example",
                fence("python", program),
                f"Input: f({input_src})",
                f"<think> {reasoning} </think> <answer>{output}</answer>",
                "",
                "# Your Program",
                fence("python", task.program),
                f"Input: f({task.input})",
            ]
        )
        return render(content, fmt, chat_note=_SOLVE_NOTE)

    def parse_answer(self, completion: str, require_think: bool = True, monte_carlo: bool = False) -> SolverAnswer:
        """The value inside ``<answer>`` (found as ``answer_extraction`` says): its last fenced block when there is
        one, else the whole content, as the family's worked example shows it."""
        envelope = self.reader.envelope(completion, require_think, monte_carlo)
        if envelope.answer is None:
            return SolverAnswer(False, None, envelope.error)
        blocks = fenced_blocks(envelope.answer)
        value = (blocks[-1].body if blocks else envelope.answer).strip()
        if not value:
            return SolverAnswer(False, None, "missing_output")
        return SolverAnswer(envelope.format_ok, value, envelope.error)
