"""Task families and task types by name: the arithmetic family (generator, constraint, held-out set, prompts,
parsing), the registry (plain names, register_task_type, entry points, ``module:Class``), the config and the trainer
playing a family, and its held-out set as a benchmark."""

from __future__ import annotations

import random
import sys

import pytest

from azr_trl import AZRTrainer
from azr_trl.evaluation.registry import get_benchmark, parse_benchmark_list
from azr_trl.evaluation.scoring import score_code_reasoning
from azr_trl.executor import ExecutorConfig, make_executor
from azr_trl.selfplay.advantages import baseline_group_ids
from azr_trl.tasks import (
    ArithmeticFamily,
    Task,
    TaskFamily,
    get_task_spec,
    register_task_type,
    task_spec_class,
    validate_candidates,
)
from azr_trl.tasks import registry as task_registry
from azr_trl.tasks.families.arithmetic import pipeline_program

from scripts.tiny_azr_run import length_reward, tiny_config
from tiny import make_tiny_model, make_tiny_tokenizer


@pytest.fixture(scope="module")
def executor():
    with make_executor(ExecutorConfig(timeout=2.0, workers=2)) as ex:
        yield ex


def _proposal(program: str, input_src: str) -> str:
    return f"<answer>\n```python\n{program}\n```\n```input\n{input_src}\n```\n</answer>"


# ---------------------------------------------------------------------------------------------------------------
# The arithmetic family
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("difficulty", [1, 3, 5, 12])
def test_generated_tasks_are_inside_the_family_at_the_difficulty(difficulty):
    family = ArithmeticFamily(difficulty=difficulty)
    tasks = family.seed_tasks(20, seed=1) + family.heldout_tasks(20)
    for task in tasks:
        assert task.task_type == "arithmetic" and task.output is None
        assert family.check_candidate(task) is None, task.program
        assert task.program.count("    x = x ") == difficulty


def test_heldout_set_is_fixed_and_never_seeded():
    family = ArithmeticFamily(difficulty=4)
    pool = family.heldout_tasks()
    assert len(pool) == family.heldout_pool_size
    assert [t.program for t in ArithmeticFamily(difficulty=4).heldout_tasks(30)] == [t.program for t in pool[:30]]
    heldout = {t.key() for t in pool}
    for seed in range(3):
        seeds = family.seed_tasks(200, seed=seed)
        assert len(seeds) == 200 and all(t.pinned for t in seeds)
        assert not heldout & {t.key() for t in seeds}, "a seed task is in the held-out pool"
    assert family.seed_tasks(5, seed=0) != family.seed_tasks(5, seed=1)
    # Another difficulty is another pool.
    assert ArithmeticFamily(difficulty=5).heldout_tasks(5) != family.heldout_tasks(5)


@pytest.mark.parametrize(
    ("program", "input_src", "error"),
    [
        (pipeline_program([("*", 3), ("%", 7)]), "12", None),
        (pipeline_program([("//", 100), ("-", 1)]), "-1000", None),
        ("def f(n):\n    n = n + 2\n    return n", "5", None),  # any one parameter name
        (pipeline_program([("+", 1)] * 13), "1", "outside_family"),  # more than 12 lines
        ("def f(x):\n    return x", "1", "outside_family"),  # no update line
        (pipeline_program([("+", 101)]), "1", "outside_family"),  # constant too large
        (pipeline_program([("%", 0)]), "1", "outside_family"),
        ("def f(x):\n    x = x + 1.5\n    return x", "1", "outside_family"),
        ("def f(x):\n    x = x ** 2\n    return x", "1", "outside_family"),  # not one of + - * // %
        ("def f(x):\n    y = x + 1\n    return y", "1", "outside_family"),  # another variable
        ("def f(x):\n    x = 2 * x\n    return x", "1", "outside_family"),  # constant first
        ("def f(x):\n    for _ in range(3):\n        x = x + 1\n    return x", "1", "outside_family"),
        ("import math\ndef f(x):\n    x = x + 1\n    return x", "1", "outside_family"),
        ("def f(x, y):\n    x = x + 1\n    return x", "1, 2", "outside_family"),
        (pipeline_program([("+", 1)]), "1001", "input_outside_family"),
        (pipeline_program([("+", 1)]), "[1]", "input_outside_family"),
        (pipeline_program([("+", 1)]), "True", "input_outside_family"),
        (pipeline_program([("+", 1)]), "1, 2", "input_outside_family"),
    ],
)
def test_proposals_outside_the_family_are_refused_at_parse_time(program, input_src, error):
    proposal = ArithmeticFamily().parse_proposal(_proposal(program, input_src), require_think=False)
    assert proposal.error == error
    assert proposal.ok == (error is None)
    if error is not None:
        assert proposal.format_ok, "a program outside the family is an invalid task, not a format error"


def test_validation_computes_the_output_and_refuses_huge_ones(executor):
    family = ArithmeticFamily()
    negative = Task("arithmetic", pipeline_program([("-", 30), ("//", 4), ("%", 7)]), input="6")
    huge = Task("arithmetic", pipeline_program([("*", 100)] * 4), input="1000")
    (ok, verdict), (refused, why) = validate_candidates(executor, [(family, negative), (family, huge)])
    assert (ok.output, verdict) == (repr(((6 - 30) // 4) % 7), "ok")  # Python's floor semantics: (-6) % 7 == 1
    assert refused is None and why == "output_outside_family"
    assert family.with_outputs(executor, [negative, huge]) == [ok]


@pytest.mark.parametrize(
    ("completion", "value", "format_ok"),
    [
        ("<think> x = 3 </think> <answer>7</answer>", "7", True),
        ("x = 4 * 2 = 8\n<answer> -3 </answer>", "-3", True),
        ("<answer>\n```output\n12\n```\n</answer>", "12", True),
        ("<answer></answer>", None, False),
        ("the answer is 7", None, False),
        ("<think> unclosed <answer>7</answer>", "7", False),
    ],
)
def test_solver_answers_are_read_from_the_answer_tags(completion, value, format_ok):
    answer = ArithmeticFamily().parse_answer(completion, require_think=False)
    assert (answer.answer, answer.format_ok) == (value, format_ok)


def test_prompts_show_the_family_the_difficulty_and_a_worked_example():
    family = ArithmeticFamily(difficulty=7)
    references = family.seed_tasks(2)
    propose = family.propose_prompt(references, "chat")[0]["content"]
    assert "about 7 operations" in propose and "+ - * // %" in propose
    assert all(r.program in propose for r in references)
    solve = family.solve_prompt(Task("arithmetic", pipeline_program([("+", 2)]), input="40"), "r1")
    assert solve.endswith("Assistant: <think>")
    assert "Input: f(6)" in solve and "<answer>2</answer>" in solve and "Input: f(40)" in solve


def test_difficulty_outside_the_knob_is_refused():
    with pytest.raises(ValueError, match=r"difficulty=13 is outside \[1, 12\]"):
        ArithmeticFamily(difficulty=13)


# ---------------------------------------------------------------------------------------------------------------
# Task types by name
# ---------------------------------------------------------------------------------------------------------------


class _Squares(TaskFamily):
    """A one-line family for the registry tests: ``return x * x``."""

    task_type = "squares"
    family_title = "Square"
    worked_example = ("def f(x):\n    return x * x", "3", "3 * 3 = 9", "9")

    @classmethod
    def zero_task(cls):
        return Task(cls.task_type, "def f(x):\n    return x * x", input="1", output="1", pinned=True)

    def sample_task(self, rng: random.Random) -> Task:
        return Task(self.task_type, "def f(x):\n    return x * x", input=str(rng.randint(0, 10**6)))

    def check_candidate(self, task: Task) -> str | None:
        return None if task.program.strip() == "def f(x):\n    return x * x" else "outside_family"


def test_unknown_task_type_says_how_to_name_one():
    with pytest.raises(ValueError, match="azr_trl.task_types.*package.module:ClassName"):
        task_spec_class("no_such_family")
    with pytest.raises(ValueError, match="cannot import module"):
        task_spec_class("azr_trl_no_such_module:Thing")
    with pytest.raises(ValueError, match="is not a TaskSpec subclass"):
        task_spec_class("azr_trl.tasks:Task")


def test_register_task_type(monkeypatch):
    monkeypatch.setattr(task_registry, "_REGISTERED", {})
    register_task_type(_Squares)
    assert isinstance(get_task_spec("squares", difficulty=1), _Squares)
    with pytest.raises(ValueError, match="built-in"):
        register_task_type(ArithmeticFamily, name="deduction")


def test_entry_points_and_module_class_names(tmp_path, monkeypatch):
    # A plugin module, and an installed distribution whose entry point names its class.
    (tmp_path / "azr_plugin_family.py").write_text(f"from {__name__} import _Squares as Squares\n")
    dist = tmp_path / "azr_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: azr-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[azr_trl.task_types]\nsquares_ep = azr_plugin_family:Squares\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(task_registry, "_REGISTERED", {})
    assert task_spec_class("squares_ep") is _Squares
    assert task_spec_class("azr_plugin_family:Squares") is _Squares
    monkeypatch.delitem(sys.modules, "azr_plugin_family", raising=False)


def _family_config(tmp_path, **overrides):
    return tiny_config(str(tmp_path), **{"per_device_train_batch_size": 4, **overrides})


def test_config_plays_a_family_by_name_or_by_module_class(tmp_path, monkeypatch):
    monkeypatch.setattr(task_registry, "_REGISTERED", {})
    config = _family_config(str(tmp_path), task_types=["arithmetic"], task_options='{"arithmetic": {"difficulty": 3}}')
    assert config.task_types == ["arithmetic"] and config.task_options == {"arithmetic": {"difficulty": 3}}
    assert not config.seeds_from_model  # a family brings its own seeds
    # A module:Class name is played under its task_type and registered for later look-ups by that name.
    config = _family_config(tmp_path, task_types=[f"{__name__}:_Squares"])
    assert config.task_types == ["squares"] and task_spec_class("squares") is _Squares
    with pytest.raises(ValueError, match="outside"):
        _family_config(tmp_path, task_types=["arithmetic"], task_options={"arithmetic": {"difficulty": 99}})
    with pytest.raises(ValueError, match="not in task_types"):
        _family_config(tmp_path, task_types=["deduction"], task_options={"arithmetic": {}})
    with pytest.raises(ValueError, match="Unknown task type 'arithmetics'"):
        _family_config(tmp_path, task_types=["arithmetics"])


def test_baseline_groups_work_for_any_task_type():
    ids = baseline_group_ids(
        ["squares", "arithmetic", "squares", "arithmetic"], ["solve", "solve", "propose", "solve"]
    )
    assert ids.tolist() == [2, 0, 1, 0]  # sorted (task type, role) pairs


# ---------------------------------------------------------------------------------------------------------------
# Playing a family, and its held-out set as a benchmark
# ---------------------------------------------------------------------------------------------------------------


def _script_family_proposals(model, tokenizer):
    """Answer arithmetic propose prompts with proposals: inside the family (valid), or outside it, in turn."""
    real_generate = model.generate
    count = iter(range(10**6))

    def generate(input_ids, attention_mask=None, **kwargs):
        prompts = tokenizer.batch_decode(input_ids, skip_special_tokens=True)
        if not all("Arithmetic Pipeline Program and One Input" in p for p in prompts):
            return real_generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        texts = []
        for _ in prompts:
            k = next(count)
            program = pipeline_program([("*", 2 + k % 5), ("-", 7)]) if k % 2 == 0 else "def f(x):\n    return x"
            texts.append(_proposal(program, str(k)))
        ids = [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in texts]
        width = max(len(i) for i in ids)
        import torch

        rows = [i + [tokenizer.pad_token_id] * (width - len(i)) for i in ids]
        return torch.cat([input_ids, torch.tensor(rows, dtype=input_ids.dtype)], dim=1)

    model.generate = generate


def test_trainer_plays_a_family_from_its_own_seeds(tmp_path):
    tokenizer = make_tiny_tokenizer()
    model = make_tiny_model(tokenizer)
    _script_family_proposals(model, tokenizer)
    config = tiny_config(
        str(tmp_path),
        task_types=["arithmetic"],
        task_options={"arithmetic": {"difficulty": 2, "num_seed_tasks": 8}},
        propose_per_type=2,
        solve_per_type=4,
        max_completion_length=64,
        max_steps=2,
    )
    trainer = AZRTrainer(model, args=config, processing_class=tokenizer, reward_funcs=[length_reward])
    seeds = trainer.buffer.tasks("arithmetic")
    assert len(seeds) == 8 and all(t.pinned and t.output is not None for t in seeds)
    heldout = {t.key() for t in trainer.specs["arithmetic"].heldout_tasks()}
    trainer.train()
    trainer.close()
    logged = trainer.state.log_history[0]
    assert logged["azr/arithmetic/propose/valid_rate"] == 0.5
    assert logged["azr/arithmetic/propose/verdict/outside_family"] == 0.5
    assert "azr/arithmetic/solve/reward_mean" in logged
    added = [t for t in trainer.buffer.tasks("arithmetic") if not t.pinned]
    assert len(added) == 2 and all(t.step >= 1 for t in added)  # one valid proposal per step
    assert not heldout & {t.key() for t in trainer.buffer.tasks("arithmetic")}


def test_family_heldout_set_is_a_benchmark_scored_like_the_solver(executor):
    assert parse_benchmark_list("family:arithmetic@3,cruxeval_o") == ["family:arithmetic@3", "cruxeval_o"]
    benchmark = get_benchmark("family:arithmetic@3")
    assert benchmark.task_type == "arithmetic" and "difficulty 3" in benchmark.title
    items = benchmark.load(limit=5)
    assert len(items) == 5
    assert [i.program for i in items] == [t.program for t in ArithmeticFamily(difficulty=3).heldout_tasks(5)]
    completions = [
        [f"<answer>{item.output}</answer>"] if i % 2 == 0 else ["<answer>123456</answer>"]
        for i, item in enumerate(items)
    ]
    records = score_code_reasoning("arithmetic", items, completions, executor, require_think=False)
    assert [r[0]["correct"] for r in records] == [True, False, True, False, True]
    with pytest.raises(KeyError, match="not a task family"):
        get_benchmark("family:deduction")
    with pytest.raises(KeyError, match="outside"):
        get_benchmark("family:arithmetic@0")
