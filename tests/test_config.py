"""AZRConfig: batch arithmetic derived for the user, invalid combinations rejected with the field named."""

import pytest

from azr_trl import AZRConfig


def make(**kwargs):
    base = {"output_dir": "unused", "max_steps": 2, "use_cpu": True, "report_to": "none"}
    return AZRConfig(**{**base, **kwargs})


def test_batch_arithmetic_is_derived():
    config = make(propose_per_type=2, solve_per_type=2, per_device_train_batch_size=4)
    assert config.rows_per_device == 12
    assert config.steps_per_generation == 3
    assert config.gradient_accumulation_steps == 3  # one optimizer step per AZR step
    assert config.generation_batch_size == 12
    assert config.generation_batch_size % config.num_generations == 0


def test_paper_defaults():
    config = make(per_device_train_batch_size=8)
    assert config.beta == 0.0
    assert config.mc_rollouts == 8
    assert config.num_references == 6
    assert config.trivial_task_reward == 0.0
    assert config.baseline == "task_role"
    assert config.advantage_weighting == "sample"
    assert config.lr_scheduler_type == "constant"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"per_device_train_batch_size": 5}, "per_device_train_batch_size"),
        ({"task_types": ["deduction", "coding"]}, "task_types"),
        ({"task_types": ["induction"]}, "induction"),
        ({"mc_rollouts": 1}, "mc_rollouts"),
        ({"baseline": "group"}, "baseline"),
        ({"prompt_format": "xml"}, "prompt_format"),
        ({"mc_temperature": 0.0}, "mc_temperature"),
        ({"intrinsic_rewards": "{not json"}, "intrinsic_rewards"),
        ({"steps_per_generation": 5}, "steps_per_generation"),
        ({"gradient_accumulation_steps": 5}, "gradient_accumulation_steps"),
        ({"max_steps": -1}, "max_steps"),
    ],
)
def test_invalid_combinations_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**{"per_device_train_batch_size": 4, **kwargs})


def test_dict_fields_accept_json_strings():
    config = make(per_device_train_batch_size=4, intrinsic_rewards='{"complexity": {"coef": 0.1, "max": 0.5}}')
    assert config.intrinsic_rewards == {"complexity": {"coef": 0.1, "max": 0.5}}


def _source_sections() -> list[list[str]]:
    """The fields AZRConfig declares, grouped by the ``# ----- section -----`` comments of azr_config.py, in order."""
    import ast
    import inspect
    import re

    import azr_trl.azr_config

    source = inspect.getsource(azr_trl.azr_config)
    lines = source.splitlines()
    (cls,) = [n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "AZRConfig"]
    groups: list[list[str]] = [[]]
    banner_line = 0
    for node in cls.body:
        if not isinstance(node, ast.AnnAssign):
            continue
        banners = [i for i in range(banner_line, node.lineno) if re.match(r"\s*# -{3,} .+ -{3,}$", lines[i])]
        if banners:
            groups.append([])
            banner_line = banners[-1] + 1
        groups[-1].append(node.target.id)
    return [g for g in groups if g]


def test_docstring_documents_every_field_in_its_section():
    """help(AZRConfig) has TRL's `Parameters:` block: every field AZRConfig declares, once, under the section of the
    source it belongs to, with its --help text."""
    import dataclasses
    import inspect
    import re

    from trl import GRPOConfig

    doc = inspect.getdoc(AZRConfig)
    block = doc.split("\nParameters:\n", 1)[1]
    sections: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("    > "):
            sections.append((line[6:], []))
        elif match := re.match(r"    (\w+) \(`[^)]*`, \*optional\*, defaults to `.+`\):$", line):
            sections[-1][1].append(match.group(1))
    assert len(sections) > 5
    # Every field declared in the class, in source order, and grouped as the source's section comments group them.
    assert [name for _, names in sections for name in names] == list(AZRConfig.__annotations__)
    assert [names for _, names in sections] == _source_sections()
    # The first section is exactly the GRPOConfig fields whose default AZRConfig changes; the others are AZR's own.
    grpo_fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    assert set(sections[0][1]) == grpo_fields & set(AZRConfig.__annotations__) == {"lr_scheduler_type", "entropy_coef"}
    assert not grpo_fields & {name for _, names in sections[1:] for name in names}
    # Each description is the field's --help text; the lines fit the project's width.
    fields = {f.name: f for f in dataclasses.fields(AZRConfig)}
    for name in AZRConfig.__annotations__:
        text = re.search(rf"^    {name} \(.*\):\n((?:        .*\n?)+)", block, re.MULTILINE).group(1)
        assert text.split() == fields[name].metadata["help"].split(), name
    assert max(len(line) for line in AZRConfig.__doc__.split("Parameters:", 1)[1].splitlines()) <= 119
    assert "defaults to `REFERENCE_BANNED_MODULES`" in block and 'defaults to `"paper"`' in block
