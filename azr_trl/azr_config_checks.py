"""The presets and refusals of `AZRConfig`: paper vs reference-code defaults, allowed values and impossible settings.

`AZRConfig.__post_init__` applies the preset, then refuses every AZR or GRPO setting that its step cannot honour,
with a message naming the field and what to set instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .azr_config_defaults import REFERENCE_SEED_MINIMUM
from .executor.types import EXECUTOR_KINDS
from .executor.values import VALUE_EQUALITIES
from .tasks.base import CALL_WRAPPED_INPUTS
from .tasks.parsing import ENTRY_RENAMES
from .tasks.prompts import PROMPT_FORMAT_CHOICES
from .tasks.reading import ANSWER_EXTRACTIONS
from .tasks.registry import known_task_types, register_task_type, task_spec_class


if TYPE_CHECKING:
    from .azr_config import AZRConfig


# Every known difference between the paper and its reference code, as the values each preset gives the fields left
# unset (None). A field set explicitly keeps its value whatever the preset.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "trivial_task_reward": 0.0,  # Eq. 4/6: a task solved always or never has learnability 0
        "advantage_weighting": "sample",  # Eq. 8: per-sample mean and std per (task type, role)
        "induction_inputs": "exact",  # the prompt asks for exactly N inputs
        "reject_duplicate_inputs": True,  # the prompt asks for different inputs
        "reject_message_leaks": True,  # the prompt forbids copying the program into the message
        "seed_num_tasks": 0,  # start from the zero triplet
        "seed_num_induction": 0,
        "require_think": None,  # by prompt format: r1 yes, chat no
        "call_wrapped_inputs": "unwrap",  # an input written f(x) (proposal or abduction answer) is the input x
        "value_equality": "typed",  # the output's repr says True or 1: a solver that predicts the other is wrong
        "pasted_inputs": False,  # a comment or a line break in an input is layout
        "truncate_outputs": 0,  # gold outputs kept whole
        "reject_input_calls": False,  # `input(` is harmless in the sandbox (no stdin)
        "entry_rename": "token",  # the last top-level function renamed as an identifier
        "keep_badly_formatted_tasks": False,  # the buffer takes tasks of well-formed proposals only
    },
    "reference": {
        "trivial_task_reward": -0.5,  # reward manager: -0.5 for a valid task with solve rate 0 or 1
        "advantage_weighting": "token",  # verl's masked whitening: token-weighted, Bessel on the token count
        "induction_inputs": "last_n",  # at least N input blocks; the last N are kept
        "reject_duplicate_inputs": False,  # not checked
        "reject_message_leaks": False,  # not checked
        "seed_num_tasks": 256,  # data_len 64 x seed_batch_factor 4
        "seed_num_induction": 256,
        "require_think": True,  # its format regex wants <think>...</think> before <answer>, whatever the prompt
        "call_wrapped_inputs": "nest",  # its templates run an input written f(x) as f(f(x))
        "value_equality": "python",  # eval(gold) == eval(answer) and `gold == f(x)`: True == 1
        "pasted_inputs": True,  # `f({inputs})` on one line, and only a grading program's last line is evaluated
        "truncate_outputs": 400,  # PythonExecutor.truncate of every result
        "reject_input_calls": True,  # GenericRuntime.exec_code raises on any `input(` in the code it runs
        "entry_rename": "text",  # parse_code_input_output's re.sub of `def name(` and `name(`
        "keep_badly_formatted_tasks": True,  # valid_programs: every code_validity, whatever the format score
    },
}

CHOICES: dict[str, tuple[str, ...]] = {
    "preset": tuple(PRESETS),
    "answer_extraction": ANSWER_EXTRACTIONS,
    "call_wrapped_inputs": CALL_WRAPPED_INPUTS,
    "value_equality": VALUE_EQUALITIES,
    "entry_rename": ENTRY_RENAMES,
    "induction_inputs": ("exact", "last_n"),
    "prompt_format": PROMPT_FORMAT_CHOICES,
    "baseline": ("task_role", "role", "global"),
    "advantage_weighting": ("sample", "token"),
    "executor": EXECUTOR_KINDS,
    "solver_sampling": ("max_new", "uniform"),
    "reference_sampling": ("uniform", "recency"),
    "intrinsic_combine": ("sum", "multiply", "sum_multiply", "multiply_sum"),
}


def apply_preset(config: AZRConfig) -> None:
    """Give the fields left unset (None) the values of ``config.preset``, then derive ``seed_min_tasks``."""
    if config.preset not in PRESETS:
        raise ValueError(f"preset={config.preset!r} is not one of {list(PRESETS)}.")
    for name, value in PRESETS[config.preset].items():
        if getattr(config, name) is None:
            setattr(config, name, value)
    if config.seed_min_tasks is None:
        config.seed_min_tasks = min(REFERENCE_SEED_MINIMUM, config.seed_num_tasks)


def check_azr_fields(config: AZRConfig) -> None:
    """AZR settings that cannot work together, each refused with a message naming the field and a way out."""
    if not config.task_types:
        raise ValueError(f"task_types is empty: choose some of {known_task_types()}.")
    config.task_types = [_task_type_name(name) for name in config.task_types]
    if len(set(config.task_types)) != len(config.task_types):
        raise ValueError(f"task_types={config.task_types!r} lists a task type twice.")
    if "induction" in config.task_types and not {"deduction", "abduction"} & set(config.task_types):
        # Induction proposals are built from programs of the deduction/abduction buffers.
        raise ValueError(
            "task_types=['induction'] needs deduction or abduction too: induction prompts take their program from "
            "those buffers. Use task_types=['deduction', 'abduction', 'induction']."
        )
    for name, choices in CHOICES.items():
        if getattr(config, name) not in choices:
            raise ValueError(f"{name}={getattr(config, name)!r} is not one of {list(choices)}.")
    for name in ("propose_per_type", "solve_per_type", "num_references"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(config, name)}.")
    if config.mc_rollouts < 2:
        raise ValueError(
            f"mc_rollouts={config.mc_rollouts}: learnability 1 - r needs at least 2 Monte-Carlo rollouts, otherwise "
            "every solve rate is 0 or 1 and every valid proposal gets trivial_task_reward. Use mc_rollouts=8 "
            "(paper)."
        )
    if config.induction_num_inputs < 2:
        raise ValueError(
            f"induction_num_inputs={config.induction_num_inputs}: at least 2 are needed (half shown, half hidden)."
        )
    if config.truncate_outputs < 0:
        raise ValueError(f"truncate_outputs={config.truncate_outputs}: use 0 (keep outputs whole) or a length > 0.")
    if config.executor_timeout <= 0:
        raise ValueError(f"executor_timeout must be positive, got {config.executor_timeout}.")
    if config.max_prompt_tokens < 1:
        raise ValueError(f"max_prompt_tokens must be at least 1, got {config.max_prompt_tokens}.")
    if config.generation_chunk_size < 1:
        raise ValueError(f"generation_chunk_size must be at least 1, got {config.generation_chunk_size}.")
    if config.buffer_max_size < 1:
        raise ValueError(f"buffer_max_size must be at least 1, got {config.buffer_max_size}.")
    if config.vllm_server_retry_seconds < 0 or config.vllm_server_retry_max_interval <= 0:
        raise ValueError(
            f"vllm_server_retry_seconds={config.vllm_server_retry_seconds} must be >= 0 and "
            f"vllm_server_retry_max_interval={config.vllm_server_retry_max_interval} > 0."
        )
    if config.vllm_weight_push_timeout < 0:
        raise ValueError(
            f"vllm_weight_push_timeout must be >= 0 (0: no watchdog), got {config.vllm_weight_push_timeout}."
        )
    for name in ("seed_num_tasks", "seed_num_induction", "seed_min_tasks"):
        if getattr(config, name) < 0:
            raise ValueError(f"{name} must be at least 0, got {getattr(config, name)}.")
    for name in ("seed_max_rounds", "seed_patience"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(config, name)}.")
    if config.seed_min_tasks > config.seed_num_tasks:
        raise ValueError(
            f"seed_min_tasks={config.seed_min_tasks} is more than seed_num_tasks={config.seed_num_tasks}: the seeding "
            "phase stops at seed_num_tasks."
        )
    if config.seed_num_induction > 0 and config.seed_num_tasks == 0 and not config.seed_files:
        raise ValueError(
            f"seed_num_induction={config.seed_num_induction} needs seed_num_tasks > 0: induction seeds are proposed "
            "on the programs of the seed triplets."
        )
    if config.mc_temperature is not None and config.mc_temperature <= 0:
        raise ValueError(
            f"mc_temperature={config.mc_temperature}: Monte-Carlo rollouts must be sampled (temperature > 0); "
            "greedy rollouts make every solve rate 0 or 1."
        )


def _task_type_name(name: str) -> str:
    """The task type ``name`` stands for; a ``module:Class`` spec is registered under its ``task_type``."""
    try:
        spec_class = task_spec_class(name)
    except ValueError as err:
        raise ValueError(f"task_types: {err}") from None
    if spec_class.task_type != name:
        register_task_type(spec_class)
    return spec_class.task_type


def check_task_options(config: AZRConfig) -> None:
    """``task_options`` names trained task types and builds each of their specs (bad options fail here, not later)."""
    for task_type, options in config.task_options.items():
        if task_type not in config.task_types:
            raise ValueError(f"task_options names {task_type!r}, which is not in task_types={config.task_types}.")
        if not isinstance(options, dict):
            raise ValueError(
                f"task_options[{task_type!r}] must be a JSON object of constructor options, got {options!r}."
            )
        try:
            task_spec_class(task_type)(**options)
        except (TypeError, ValueError) as err:
            raise ValueError(f"task_options[{task_type!r}]={options}: {err}") from None


def check_grpo_fields(config: AZRConfig) -> None:
    """GRPO settings that AZR's step cannot honour."""
    if config.num_iterations != 1:
        raise ValueError(
            f"num_iterations={config.num_iterations}: an AZR step is on-policy (its proposals, Monte-Carlo rollouts "
            "and buffer update happen once per step, and its sequences are trained on once). Leave num_iterations "
            "at 1."
        )
    if config.scale_rewards != "group":
        raise ValueError(
            f"scale_rewards={config.scale_rewards!r}: AZR replaces GRPO's per-prompt advantages with Task-Relative "
            "REINFORCE++, so GRPO's scale_rewards has no effect. Leave it unset and use scale_advantages "
            "(divide by the group's std or not) and baseline (task_role, role or global) instead."
        )
