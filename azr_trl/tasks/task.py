"""The task record that flows between the proposer, the executor, the buffer and the solver."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal


TaskType = Literal["deduction", "abduction", "induction"]
TASK_TYPES: tuple[str, ...] = ("deduction", "abduction", "induction")
ROLES: tuple[str, ...] = ("propose", "solve")


@dataclass
class Task:
    """A validated (or candidate) AZR task.

    Deduction and abduction tasks are a triplet ``(program, input, output)``: ``input`` is the argument-list source
    text (``"'ab', [1, 2]"``) and ``output`` is ``repr(f(*input))`` as computed by the executor. Induction tasks hold a
    program, ``inputs``/``outputs`` lists (the first half shown to the solver, the rest hidden) and a ``message``.
    """

    task_type: str
    program: str
    input: str | None = None
    output: str | None = None
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    message: str | None = None
    step: int = 0  # training step at which the task entered the buffer (0 = seed)
    pinned: bool = False  # pinned seeds are never evicted by the buffer cap
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Task:
        known = {k: row[k] for k in cls.__dataclass_fields__ if k in row}
        return cls(**known)

    def key(self) -> str:
        """Canonical identity used for deduplication: the program's normalised AST plus the normalised input(s).

        Layout, comments and docstrings of the program and spacing of the inputs do not change the key; the task type,
        outputs and message do not enter it.
        """
        from .parsing import input_shape, program_shape

        if self.inputs:
            inputs = "\n".join(input_shape(src) for src in self.inputs)
        else:
            inputs = input_shape(self.input or "")
        digest = hashlib.sha256(f"{program_shape(self.program)}\n\x00\n{inputs}".encode())
        return digest.hexdigest()[:32]


# The zero tasks: what an empty buffer of a paper task type starts from (the reference seeds the identity program).
ZERO_PROGRAM = "def f(a):\n    return a\n"
ZERO_INPUT = "'Hello world'"
# The reference's zero induction item with literal inputs (its `dict(a=1, b=2)` is a call, which we never accept).
ZERO_INDUCTION_INPUTS = (
    "'Hello world'",
    "1",
    "{'a': 1, 'b': 2}",
    "(1.1, 1.2, 1.3)",
    "'[[1, 0, 0], [0, 0, 0], [0, 0, 0]]'",
    "1001101100010001",
)
ZERO_INDUCTION_OUTPUTS = ZERO_INDUCTION_INPUTS  # the identity's output is its argument's repr
ZERO_MESSAGE = "Write a function that returns its input unchanged."


def zero_triplet(task_type: str = "deduction") -> Task:
    """The identity program on ``'Hello world'``: the seed of an empty deduction/abduction buffer."""
    return Task(task_type=task_type, program=ZERO_PROGRAM, input=ZERO_INPUT, output=ZERO_INPUT, pinned=True)


def zero_induction_task() -> Task:
    """The identity program with six inputs of different types: the seed of an empty induction buffer."""
    return Task(
        task_type="induction",
        program=ZERO_PROGRAM,
        inputs=list(ZERO_INDUCTION_INPUTS),
        outputs=list(ZERO_INDUCTION_OUTPUTS),
        message=ZERO_MESSAGE,
        pinned=True,
    )
