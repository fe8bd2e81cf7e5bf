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


def _source_sections() -> list[tuple[str, list[str]]]:
    """The fields AZRConfig declares, grouped by the ``first_in_section(title, ...)`` calls of azr_config.py's source
    (each opens a section), with the titles, in order."""
    import ast
    import inspect

    import azr_trl.azr_config

    source = inspect.getsource(azr_trl.azr_config)
    (cls,) = [n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "AZRConfig"]
    sections: list[tuple[str, list[str]]] = []
    for node in cls.body:
        if not isinstance(node, ast.AnnAssign):
            continue
        call = node.value
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "first_in_section":
            sections.append((ast.literal_eval(call.args[0]), []))
        sections[-1][1].append(node.target.id)
    return sections


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
    # Every field declared in the class, once, in source order, under the section the source opens before it.
    assert [name for _, names in sections for name in names] == list(AZRConfig.__annotations__)
    assert sections == _source_sections()
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


def test_a_field_outside_every_section_fails_loudly():
    """A parameter declared before any ``first_in_section`` would be missing from the docstring: building the
    ``Parameters:`` block refuses it, naming the field; so does a section opened twice."""
    import dataclasses

    from azr_trl.azr_config_docs import first_in_section, parameters_doc

    @dataclasses.dataclass
    class Unsectioned(AZRConfig):
        new_knob: int = dataclasses.field(default=0, metadata={"help": "A knob."})
        newer_knob: int = first_in_section("Parameters that control knobs", default=0, metadata={"help": "A knob."})

    with pytest.raises(TypeError, match=r"Unsectioned\.new_knob is declared before any section"):
        parameters_doc(Unsectioned)

    @dataclasses.dataclass
    class TwiceOpened(AZRConfig):
        knob: int = first_in_section("Parameters that control knobs", default=0, metadata={"help": "A knob."})
        other_knob: int = first_in_section("Parameters that control knobs", default=0, metadata={"help": "A knob."})

    with pytest.raises(TypeError, match="two fields open the section 'Parameters that control knobs'"):
        parameters_doc(TwiceOpened)

    @dataclasses.dataclass
    class Sectioned(AZRConfig):
        knob: int = first_in_section("Parameters that control knobs", default=0, metadata={"help": "A knob."})
        other_knob: int = dataclasses.field(default=1, metadata={"help": "Another knob."})

    block = parameters_doc(Sectioned)
    assert block.splitlines()[1] == "        > Parameters that control knobs"
    assert [line.split()[0] for line in block.splitlines() if "defaults to" in line] == ["knob", "other_knob"]


def test_sectioned_fields_parse_from_the_command_line():
    """The section titles stay out of the fields' metadata, which HfArgumentParser hands to argparse as is."""
    from transformers import HfArgumentParser

    (config,) = HfArgumentParser(AZRConfig).parse_args_into_dataclasses(
        ["--output_dir", "unused", "--max_steps", "2", "--use_cpu", "--report_to", "none"]
        + ["--per_device_train_batch_size", "4", "--solver_correct_reward", "2.0", "--task_types", "deduction"]
    )
    assert config.solver_correct_reward == 2.0 and config.task_types == ["deduction"]
