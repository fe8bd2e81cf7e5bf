"""AZR task types: deduction, abduction and induction, each for the propose and the solve role, and task families
(constrained program spaces such as ``arithmetic``) registered by name.

```python
spec = get_task_spec("deduction", num_inputs=10, reject_multiple_functions=False)
prompt = spec.propose_prompt(references, "chat")
proposal = spec.parse_proposal(completion, references, require_think=False)
task, verdict = validate_candidates(executor, [(spec, proposal.candidate)])[0]
```
"""

from __future__ import annotations

from .base import Prompt, Proposal, SolverAnswer, TaskSpec, run_validation, validate_candidates
from .families import ArithmeticFamily, TaskFamily
from .induction import InductionSpec, split_pairs
from .prompts import PROMPT_FORMATS, prompt_text
from .registry import get_task_spec, is_task_type, known_task_types, register_task_type, task_spec_class
from .task import ROLES, TASK_TYPES, Task
from .triplet import AbductionSpec, DeductionSpec


__all__ = [
    "PROMPT_FORMATS",
    "ArithmeticFamily",
    "TaskFamily",
    "is_task_type",
    "known_task_types",
    "register_task_type",
    "task_spec_class",
    "ROLES",
    "TASK_TYPES",
    "AbductionSpec",
    "DeductionSpec",
    "InductionSpec",
    "Prompt",
    "Proposal",
    "SolverAnswer",
    "Task",
    "TaskSpec",
    "get_task_spec",
    "prompt_text",
    "run_validation",
    "split_pairs",
    "validate_candidates",
]
