"""The arithmetic-pipeline family: ``def f(x)`` updates one integer with a few ``x = x <op> <constant>`` lines.

```python
def f(x):
    x = x * 7
    x = x - 12
    x = x % 9
    return x
```

Predicting the output takes exact integer arithmetic and Python's own semantics (floor division and modulo of negative
numbers), one step per line, so the difficulty knob is simply the number of lines. It was chosen for small models:
the project's learning benchmark measured how often Qwen2.5-Coder-0.5B-Instruct solves its tasks at each difficulty
(see ``benchmarks/bench_learning.py``).
"""

from __future__ import annotations

import ast
import random

from ...executor.checks import parse_args
from ..task import Task
from .base import TaskFamily


_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//", ast.Mod: "%"}
# What the generator draws for each operator (the proposer may use any constant up to MAX_CONSTANT).
_GENERATED_CONSTANTS = {"+": (1, 20), "-": (1, 20), "*": (2, 9), "//": (2, 9), "%": (2, 9)}
MAX_LINES = 12
MAX_CONSTANT = 100
MAX_INPUT = 1000
MAX_OUTPUT = 10**6
GENERATED_INPUTS = (0, 50)


def pipeline_program(steps: list[tuple[str, int]]) -> str:
    """The family's program for ``[(operator, constant), ...]``."""
    lines = ["def f(x):", *(f"    x = x {op} {constant}" for op, constant in steps), "    return x"]
    return "\n".join(lines)


class ArithmeticFamily(TaskFamily):
    """Arithmetic pipelines on one integer; ``difficulty`` is the number of update lines (1 to 12, default 5).

    Parameters are :class:`~azr_trl.tasks.families.TaskFamily`'s.
    """

    task_type = "arithmetic"
    family_title = "Arithmetic Pipeline"
    family_rules = (
        "- The program is one function `def f(x):` whose argument `x` is an integer.",
        f"- Its body is 1 to {MAX_LINES} lines of the form `x = x <op> <n>`, where <op> is one of + - * // % and "
        f"<n> is an integer constant from 1 to {MAX_CONSTANT}, followed by `return x`.",
        "- Nothing else: no other variables, functions, loops, conditions, imports or comments.",
        f"- The input is one integer from -{MAX_INPUT} to {MAX_INPUT}; the output must stay within ±{MAX_OUTPUT:,}.",
    )
    solve_instruction = (
        "Run the program by hand on the input: write the value of `x` after each line, one short line per step, "
        "then give the integer that `f` returns."
    )
    worked_example = (
        pipeline_program([("*", 4), ("-", 7), ("%", 5)]),
        "6",
        "x = 6 * 4 = 24\nx = 24 - 7 = 17\nx = 17 % 5 = 2",
        "2",
    )
    propose_plan_example = "Mix operations so that the value grows, then shrinks, and passes through negatives."
    default_difficulty = 5
    min_difficulty = 1
    max_difficulty = MAX_LINES

    @classmethod
    def zero_task(cls) -> Task:
        return Task(cls.task_type, pipeline_program([("+", 1)]), input="1", output="2", pinned=True)

    def sample_task(self, rng: random.Random) -> Task:
        steps = []
        for _ in range(self.difficulty):
            op = rng.choice(tuple(_GENERATED_CONSTANTS))
            steps.append((op, rng.randint(*_GENERATED_CONSTANTS[op])))
        return Task(self.task_type, pipeline_program(steps), input=str(rng.randint(*GENERATED_INPUTS)))

    def check_candidate(self, task: Task) -> str | None:
        if not _is_pipeline(task.program):
            return "outside_family"
        args = parse_args(task.input or "")
        if args is None or len(args) != 1 or type(args[0]) is not int or abs(args[0]) > MAX_INPUT:
            return "input_outside_family"
        return None

    def check_output(self, output: str) -> str | None:
        args = parse_args(output)
        if args is None or len(args) != 1 or type(args[0]) is not int or abs(args[0]) > MAX_OUTPUT:
            return "output_outside_family"
        return None


def _is_pipeline(program: str) -> bool:
    """Whether ``program`` is exactly ``def f(<name>):``, 1 to MAX_LINES ``<name> = <name> <op> <n>``, ``return``."""
    try:
        tree = ast.parse(program)
    except SyntaxError:
        return False
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef):
        return False
    function = tree.body[0]
    arguments = function.args
    if (
        function.name != "f"
        or function.decorator_list
        or arguments.posonlyargs
        or arguments.kwonlyargs
        or arguments.vararg
        or arguments.kwarg
        or arguments.defaults
        or len(arguments.args) != 1
    ):
        return False
    name = arguments.args[0].arg
    *updates, last = function.body
    if not 1 <= len(updates) <= MAX_LINES:
        return False
    if not (isinstance(last, ast.Return) and isinstance(last.value, ast.Name) and last.value.id == name):
        return False
    return all(_is_update(statement, name) for statement in updates)


def _is_update(statement: ast.stmt, name: str) -> bool:
    if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1):
        return False
    target, value = statement.targets[0], statement.value
    return (
        isinstance(target, ast.Name)
        and target.id == name
        and isinstance(value, ast.BinOp)
        and type(value.op) in _OPERATORS
        and isinstance(value.left, ast.Name)
        and value.left.id == name
        and isinstance(value.right, ast.Constant)
        and type(value.right.value) is int
        and 1 <= value.right.value <= MAX_CONSTANT
    )
