"""The `Parameters:` block of `AZRConfig`'s docstring, in TRL's layout, built from the fields' ``help`` metadata.

Each field's help text is written once, in its ``metadata``: `HfArgumentParser` shows it for ``--help`` and
:func:`parameters_doc` renders it under the section the field belongs to, so ``help(AZRConfig)`` reads like
``help(GRPOConfig)``. `tests/test_config.py` checks that the sections list every field `AZRConfig` declares, in the
order and grouping of the source.
"""

from __future__ import annotations

import dataclasses
import textwrap

from .executor.types import REFERENCE_BANNED_MODULES


# Section titles (TRL's "> Parameters that control ...") and the fields under each, in declaration order.
PARAMETER_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Parameters of `GRPOConfig` whose AZR default differs", ("lr_scheduler_type", "entropy_coef")),
    ("Parameters that choose between the paper and the reference code", ("preset",)),
    (
        "Parameters that control the self-play layout",
        (
            "task_types",
            "propose_per_type",
            "solve_per_type",
            "mc_rollouts",
            "mc_temperature",
            "num_references",
            "induction_num_inputs",
            "induction_inputs",
            "reject_duplicate_inputs",
            "reject_message_leaks",
        ),
    ),
    ("Parameters that control generation", ("generation_chunk_size", "banned_token_ids")),
    (
        "Parameters that control prompts and parsing",
        ("prompt_format", "require_think", "answer_extraction", "reject_multiple_functions"),
    ),
    (
        "Parameters that control the rewards",
        (
            "solver_correct_reward",
            "solver_wrong_reward",
            "format_error_reward",
            "invalid_proposal_reward",
            "trivial_task_reward",
            "intrinsic_rewards",
            "intrinsic_combine",
        ),
    ),
    (
        "Parameters that control the Task-Relative REINFORCE++ advantages",
        ("baseline", "advantage_weighting", "scale_advantages"),
    ),
    (
        "Parameters that control the executor",
        (
            "executor",
            "executor_timeout",
            "executor_workers",
            "executor_memory_mb",
            "executor_kwargs",
            "banned_modules",
        ),
    ),
    (
        "Parameters that control the task buffer and its seeding",
        (
            "seed_files",
            "seed_num_tasks",
            "seed_num_induction",
            "seed_min_tasks",
            "seed_max_rounds",
            "seed_patience",
            "buffer_max_size",
            "solver_sampling",
            "reference_sampling",
        ),
    ),
    (
        "Parameters that control evaluation during training",
        ("eval_benchmarks", "eval_benchmark_file", "eval_num_items", "eval_max_new_tokens"),
    ),
    (
        'Parameters that control the vLLM server (only used when `vllm_mode` is `"server"`)',
        ("vllm_server_retry_seconds", "vllm_server_retry_max_interval"),
    ),
)

# Defaults too long to print, by the name of the constant they equal.
_NAMED_DEFAULTS = {"REFERENCE_BANNED_MODULES": list(REFERENCE_BANNED_MODULES)}

_WIDTH = 119
_NAME_INDENT = " " * 8
_HELP_INDENT = " " * 12


def _default_text(field: dataclasses.Field) -> str:
    value = field.default_factory() if field.default is dataclasses.MISSING else field.default
    for name, named in _NAMED_DEFAULTS.items():
        if value == named:
            return name
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _type_text(field: dataclasses.Field) -> str:
    annotation = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    return " or ".join(f"`{part.strip()}`" for part in annotation.split("|"))


def _parameter(field: dataclasses.Field) -> str:
    header = f"{_NAME_INDENT}{field.name} ({_type_text(field)}, *optional*, defaults to `{_default_text(field)}`):"
    body = textwrap.fill(
        " ".join(field.metadata["help"].split()),
        width=_WIDTH,
        initial_indent=_HELP_INDENT,
        subsequent_indent=_HELP_INDENT,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return f"{header}\n{body}"


def parameters_doc(config_class: type) -> str:
    """The ``Parameters:`` block for ``config_class``'s docstring (indented as a class docstring's body)."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    lines = ["    Parameters:"]
    for title, names in PARAMETER_SECTIONS:
        lines.append(f"{_NAME_INDENT}> {title}\n")
        lines.extend(_parameter(fields[name]) for name in names)
        lines.append("")
    return "\n".join(lines)


def with_parameters_doc(config_class: type) -> str | None:
    """``config_class``'s docstring followed by its generated ``Parameters:`` block (None under ``python -OO``)."""
    if config_class.__doc__ is None:
        return None
    return f"{config_class.__doc__.rstrip()}\n\n{parameters_doc(config_class)}\n    "
