"""Pre-flight checks of the training script: everything that can be checked before a model is loaded.

A recipe or command line that cannot work (unknown keys, missing files, options that contradict each other, a
missing package) raises :class:`RecipeError` with one line naming the key, file or field at fault.
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from trl import ModelConfig

    from .azr_config import AZRConfig
    from .launch import AZRScriptArguments


# Keys that recipes written for older TRL/transformers versions (e.g. open-r1's) still carry.
_RENAMED_KEYS = {
    "torch_dtype": "use `dtype`",
    "max_prompt_length": "removed from GRPOConfig in TRL 1.x; AZR's prompt ceiling is `max_prompt_tokens` (prompts "
    "drop references to fit, never truncated)",
    "warmup_ratio": "use `warmup_steps` (a value below 1 is a ratio)",
    "overwrite_output_dir": "removed in transformers 5; pick a new `output_dir` or set `auto_resume: false`",
    "num_generations": "AZRConfig derives it; set `mc_rollouts` for the Monte-Carlo solver rollouts",
    "generation_batch_size": "AZRConfig derives it from task_types, propose_per_type and solve_per_type",
}


class RecipeError(ValueError):
    """A recipe or command line that cannot work, found before any model is loaded."""


def wants_dry_run(argv: list[str]) -> bool:
    """Whether the command line asks for a dry run (``--dry-run``, ``--dry_run [true]``, ``--dry-run=true``)."""
    wanted = False
    for i, arg in enumerate(argv):
        flag, sep, value = arg.partition("=")
        if flag not in ("--dry_run", "--dry-run"):
            continue
        if not sep:
            value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else "true"
        wanted = value.lower() in ("true", "1", "yes")
    return wanted


def has_gpu() -> bool:
    """Whether torch sees a CUDA device."""
    import torch

    return torch.cuda.is_available()


def recipe_path(argv: list[str]) -> str | None:
    """The ``--config`` recipe of a command line, if any (``--config=x`` is rewritten in place as ``--config x``)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            argv[i : i + 1] = ["--config", arg.split("=", 1)[1]]  # TrlParser only understands the spaced form
            return argv[i + 1]
        if arg == "--config":
            if i + 1 >= len(argv):
                raise RecipeError("--config needs the path of a recipe YAML file")
            return argv[i + 1]
    return None


def check_recipe_keys(parser, recipe: str) -> None:
    import yaml

    path = Path(recipe)
    if not path.is_file():
        raise RecipeError(f"recipe {recipe} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise RecipeError(f"{recipe} is not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{recipe} must be a YAML mapping of `field: value` lines")
    known = {action.dest for action in parser._actions}
    for key in data:
        if key == "env" or key in known:
            continue
        hint = _RENAMED_KEYS.get(key)
        if hint is None:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"did you mean `{close[0]}`?" if close else "not a field of AZRConfig, ModelConfig or the script"
        raise RecipeError(f"{recipe}: unknown key `{key}` ({hint})")


def check_inputs(script_args: AZRScriptArguments, training_args: AZRConfig, model_args: ModelConfig, where="") -> None:
    """Fail early on missing files and options that contradict each other."""
    if not model_args.model_name_or_path:
        raise RecipeError(f"{where}set `model_name_or_path` (a Hub id, a local folder, or `default`)")
    name = model_args.model_name_or_path
    if name.startswith((".", "/", "~")) and not Path(name).expanduser().exists():
        raise RecipeError(f"{where}model_name_or_path: {name} does not exist")
    _check_seed_files(training_args, where)
    template = script_args.chat_template
    if template and looks_like_path(template) and not Path(template).is_file():
        raise RecipeError(f"{where}chat_template: {template} does not exist")
    for path in script_args.reward_funcs or []:
        try:
            load_reward_func(path)
        except (ImportError, AttributeError, ValueError) as err:
            raise RecipeError(f"{where}reward_funcs: cannot load {path}: {err}") from None
    if script_args.merge_adapter_on_save and not model_args.use_peft:
        raise RecipeError(f"{where}merge_adapter_on_save needs use_peft: true (there is no adapter to merge)")
    if (model_args.load_in_4bit or model_args.load_in_8bit) and not model_args.use_peft:
        raise RecipeError(f"{where}load_in_4bit/load_in_8bit train only adapters: set use_peft: true (QLoRA)")
    if training_args.push_to_hub and training_args.hub_model_id is None and not training_args.output_dir:
        raise RecipeError(f"{where}push_to_hub needs hub_model_id or output_dir to name the repository")


def _check_seed_files(training_args: AZRConfig, where: str) -> None:
    """Every seed file exists and every row has the seed schema (the executor re-validates the programs later)."""
    from .jsonl import read_jsonl
    from .seeding.seed_files import resolve_seed_files, row_to_candidates

    for path in resolve_seed_files(training_args.seed_files):
        if not path.is_file():
            raise RecipeError(f"{where}seed_files: {path} does not exist (relative to {os.getcwd()})")
        try:
            rows = read_jsonl(path)
        except ValueError as err:
            raise RecipeError(f"{where}seed_files: {err}") from None
        bad = []
        for number, row in rows:
            problem = row if isinstance(row, str) else row_to_candidates(row, training_args.task_types)
            if isinstance(problem, str):
                bad.append(f"{path}:{number}: {problem}")
        if bad:
            more = f" (and {len(bad) - 1} more bad rows)" if len(bad) > 1 else ""
            raise RecipeError(f"{where}seed_files: {bad[0]}{more}; fix or remove these rows")


def check_environment(model_args: ModelConfig) -> None:
    """Packages the recipe needs beyond the base install (checked before training, not for a dry run)."""
    import importlib.util

    if (model_args.load_in_4bit or model_args.load_in_8bit) and importlib.util.find_spec("bitsandbytes") is None:
        raise RecipeError(
            "load_in_4bit/load_in_8bit (QLoRA) need bitsandbytes, which is not installed: pip install 'azr-trl[qlora]'"
        )


def check_launch(script_args: AZRScriptArguments, env=os.environ) -> None:
    """The launch runs as many training processes as the recipe is written for (``num_training_processes``).

    accelerate's configs default to 8 processes: launched without ``--num_processes``, a recipe written for 2 would
    train with 4 times its batch per step, since ``propose_per_type``/``solve_per_type`` are per process.
    """
    wanted = script_args.num_training_processes
    launched = int(env.get("WORLD_SIZE", "1"))
    if wanted is None or launched == wanted or script_args.allow_process_count_mismatch:
        return
    raise RecipeError(
        f"this recipe is written for num_training_processes={wanted} but the launch started {launched} "
        f"process{'es' if launched != 1 else ''}: add `--num_processes {wanted}` to `accelerate launch` (to train "
        f"with {launched} on purpose, with the batch per step scaled by {launched}/{wanted}, set "
        "allow_process_count_mismatch: true)"
    )


def load_reward_func(path: str):
    """Import ``package.module.function`` (the working directory is importable, as for TRL's scripts)."""
    import importlib

    module_name, _, name = path.rpartition(".")
    if not module_name:
        raise ValueError("expected a dotted path `module.function`")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    func = getattr(importlib.import_module(module_name), name)
    if not callable(func):
        raise ValueError(f"{path} is not callable")
    return func


def looks_like_path(template: str) -> bool:
    return "{" not in template and "\n" not in template
