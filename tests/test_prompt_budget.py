"""The prompt budget's shared rule, driven directly: references are dropped longest first until the propose prompt
fits (the trainer's reference sampling and seeding both use it), and the shortest prompts are checked against it.
Characters stand in for tokens, so no model is needed."""

from __future__ import annotations

import pytest

from azr_trl.tasks import Task, get_task_spec, prompt_text
from azr_trl.tasks.prompt_budget import PromptBudget, zero_reference


SPEC = get_task_spec("deduction")


def _characters(prompt) -> int:
    return len(prompt_text(prompt))


def _reference(n: int) -> Task:
    return Task("deduction", "def f(s):\n    return s", input=repr("a" * n), output=repr("a" * n))


def _length(references) -> int:
    return _characters(SPEC.propose_prompt(references, "chat"))


def test_the_longest_references_go_first_until_the_prompt_fits():
    short, middle, long = _reference(40), _reference(80), _reference(120)
    references = [middle, long, short]
    # Room for the two shorter ones together: only the longest goes, the others keep their order.
    budget = PromptBudget(_length([middle, short]), _characters)
    assert budget.fitting_references(SPEC, references, "chat") == [middle, short]
    # Room for the shortest alone: the longest goes, then the middle one.
    budget = PromptBudget(_length([short]), _characters)
    assert budget.fitting_references(SPEC, references, "chat") == [short]
    # A set that fits comes back whole, as a new list.
    budget = PromptBudget(_length(references), _characters)
    kept = budget.fitting_references(SPEC, references, "chat")
    assert kept == references and kept is not references
    # Of two equally long references, the first one goes.
    twin = _reference(120)
    budget = PromptBudget(_length([short, twin]), _characters)
    assert budget.fitting_references(SPEC, [long, short, twin], "chat") == [short, twin]


def test_nothing_fits_leaves_no_reference():
    references = [_reference(40), _reference(80)]
    budget = PromptBudget(_length([zero_reference("deduction")]), _characters)  # below every reference alone
    assert budget.fitting_references(SPEC, references, "chat") == []
    assert budget.fitting_references(SPEC, [], "chat") == []


def test_references_too_long_alone_are_handed_over_and_the_replacement_is_fitted():
    short, middle, long = _reference(40), _reference(80), _reference(120)
    handed = []

    def replace(too_long):
        handed.append(too_long)
        return [short, tiny] if len(handed) == 1 else [short, middle]

    # Each of `middle` and `long` is too long on its own: both are handed over at once, and the replacement is
    # fitted in turn (there the longest that fits alone goes).
    tiny = _reference(10)
    budget = PromptBudget(_length([short]), _characters)
    assert budget.fitting_references(SPEC, [long, short, middle], "chat", replace_too_long=replace) == [tiny]
    assert handed == [[long, middle]]
    # References that each fit alone are dropped, never handed over.
    handed.clear()
    budget = PromptBudget(_length([short, middle]), _characters)
    assert budget.fitting_references(SPEC, [long, short, middle], "chat", replace_too_long=replace) == [short, middle]
    assert handed == []


def test_the_shortest_prompts_over_the_budget_are_named():
    specs = [get_task_spec(t) for t in ("deduction", "abduction", "induction")]
    lengths = {
        (spec.task_type, role): next(PromptBudget(0, _characters).shortest_prompts_over([spec], "chat", (role,)))[2]
        for spec in specs
        for role in ("propose", "solve")
    }
    budget = PromptBudget(max(lengths.values()), _characters)
    assert list(budget.shortest_prompts_over(specs, "chat")) == []
    budget = PromptBudget(min(lengths.values()) - 1, _characters)
    over = list(budget.shortest_prompts_over(specs, "chat"))
    assert over == [(task_type, role, length) for (task_type, role), length in lengths.items()]
    assert list(budget.shortest_prompts_over(specs[:1], "chat", roles=("propose",))) == [
        ("deduction", "propose", lengths["deduction", "propose"])
    ]


def test_the_trainer_and_seeding_refuse_a_budget_no_zero_prompt_fits():
    from azr_trl.seeding.generation import check_seed_prompt_budget, seed_specs

    specs = seed_specs()
    zero = _characters(specs["abduction"].propose_prompt([zero_reference("abduction")], "chat"))
    with pytest.raises(ValueError, match=f"The shortest deduction propose prompt has .* more than the {zero - 200} "):
        check_seed_prompt_budget(PromptBudget(zero - 200, _characters), specs, "chat", induction=False)
