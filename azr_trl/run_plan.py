"""The plan printed before a run and by ``--dry-run``: rows and generation calls per step, tokens, and the memory of
one training GPU (:mod:`azr_trl.memory_plan`) for the model of a parsed recipe.

The model's shape comes from a local folder's ``config.json``, from the shapes of the recipes' models that ship with
azr-trl (:mod:`azr_trl.known_models`), or from the Hub where it is reachable; with ``HF_HUB_OFFLINE`` set the Hub is
not tried, so an unknown model's plan says at once what to do instead of retrying for half a minute.
"""

from __future__ import annotations

from pathlib import Path

from .known_models import KNOWN_MODEL_CONFIGS, known_model_config
from .memory_plan import (
    DEFAULT_GPU_MEMORY_GB,
    GIB,
    USABLE_GPU_FRACTION,
    MemoryPlan,
    TrainingLayout,
    estimate_memory,
    generation_calls,
    model_shape,
    sequence_tokens,
    training_layout,
)


def plan_run(script_args, training_args, model_args) -> tuple[str, MemoryPlan | None]:
    """The plan of a parsed recipe (script arguments, `AZRConfig`, `ModelConfig`) as text, and its memory estimate
    (None without the model's config, or for a CPU run)."""
    layout = training_layout(script_args.accelerate_config, script_args.num_training_processes)
    plan, max_positions = None, None
    if training_args.use_cpu:
        config, note = None, "use_cpu: no GPU memory plan"
    else:
        config, note = model_config(model_args, training_args)
    if config is not None:
        shape = model_shape(config, model_args.lora_r if model_args.use_peft else 0, model_args.lora_target_modules)
        gpu_bytes, gpu_label = gpu_memory(script_args)
        plan = estimate_memory(
            shape, training_args, layout, gpu_bytes, use_peft=model_args.use_peft, load_in_4bit=model_args.load_in_4bit
        )
        plan.notes.append(f"usable GPU memory: {gpu_label}")
        max_positions = shape.max_positions
        note = f"{shape.total_params / 1e9:.2f}B parameters, {note}"
    return format_plan(training_args, layout, plan, note, max_positions), plan


def format_plan(
    args, layout: TrainingLayout, plan: MemoryPlan | None, model_note: str, max_positions: int | None = None
) -> str:
    """The plan as printed by the pre-flight and ``--dry-run``."""
    lines = [f"AZR plan: {layout.describe()}"]
    rows = args.rows_per_device
    micro = rows // args.per_device_train_batch_size
    lines.append(
        f"  rows per step: {rows} per process ({len(args.task_types)} task types x ({args.propose_per_type} propose + "
        f"{args.solve_per_type} solve)), {rows * layout.processes} in total; {micro} micro-batches of "
        f"{args.per_device_train_batch_size}, one optimizer step"
    )
    engine = "vLLM server" if args.use_vllm and args.vllm_mode == "server" else (
        "vLLM colocate" if args.use_vllm else "HF generate"
    )  # fmt: skip
    calls = generation_calls(args, layout.processes)
    described = ", ".join(f"{name} {per_call}" for name, _, per_call in calls)
    lines.append(f"  generation calls per step: {len(calls)} ({engine}), sequences per call: {described}")
    generated = sum(n for _, n, _ in calls) * layout.processes
    lines.append(
        f"  tokens per step: up to {generated * args.max_completion_length / 1e6:.2f}M generated "
        f"({generated} sequences x {args.max_completion_length}), up to "
        f"{rows * layout.processes * sequence_tokens(args, max_positions)[0] / 1e6:.2f}M trained"
    )
    if plan is None:
        lines.append(f"  memory: {model_note}")
        return "\n".join(lines)
    lines.append(f"  memory per training GPU ({model_note}):")
    for name, value in plan.components.items():
        lines.append(f"    {value / GIB:7.1f} GiB  {name}")
    verdict = "fits" if plan.fits else "DOES NOT FIT"
    lines.append(f"    {plan.total_bytes / GIB:7.1f} GiB  total of {plan.gpu_bytes / GIB:.1f} GiB usable: {verdict}")
    lines += [f"    note: {note}" for note in plan.notes]
    lines += [f"  WARNING: {warning}" for warning in plan.warnings]
    return "\n".join(lines)


def model_config(model_args, training_args):
    """The model's config without its weights, and where it came from: a local folder (a converted offline model
    included), the known shapes of the recipes' models, or the Hub unless ``HF_HUB_OFFLINE`` is set. ``(None,
    reason)`` when none has it."""
    from huggingface_hub import is_offline_mode
    from transformers import AutoConfig

    from .offline_models import OFFLINE_MODELS, offline_model_dir

    name = model_args.model_name_or_path
    if name in OFFLINE_MODELS:
        converted = offline_model_dir(name)
        # Not converted yet: the same model's shape under its Hub id.
        name = str(converted) if (converted / "config.json").is_file() else OFFLINE_MODELS[name].hub_id
    if not Path(name).expanduser().is_dir():
        known = known_model_config(name, model_args.model_revision)
        if known is not None:
            return known, f"the shape of {name} shipped with azr-trl"
    try:
        config = AutoConfig.from_pretrained(
            name, revision=model_args.model_revision, trust_remote_code=training_args.trust_remote_code
        )
    except Exception as err:  # offline, gated, no such repo: the plan goes on without memory
        if is_offline_mode():
            return None, (
                f"no memory estimate: HF_HUB_OFFLINE is set and the config of {name} is neither in a local folder "
                f"nor among the recipes' models ({', '.join(KNOWN_MODEL_CONFIGS)}); point model_name_or_path at a "
                "folder holding its config.json"
            )
        reason = " ".join(str(err).split())[:160]
        return None, f"no memory estimate: the config of {name} is not available here ({reason})"
    return config, f"from the config of {model_args.model_name_or_path}"


def gpu_memory(script_args) -> tuple[float, str]:
    """Bytes CUDA can allocate on one training GPU, and how the plan knows: ``gpu_memory_gb`` (the GPU's nominal
    size, of which ``USABLE_GPU_FRACTION`` is usable), else what CUDA reports, else an 80 GB GPU."""
    import torch

    if script_args.gpu_memory_gb is None and torch.cuda.is_available():
        total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
        return total, f"{total / GIB:.1f} GiB, as CUDA reports"
    nominal = script_args.gpu_memory_gb if script_args.gpu_memory_gb is not None else DEFAULT_GPU_MEMORY_GB
    usable = nominal * GIB * USABLE_GPU_FRACTION
    return usable, f"{usable / GIB:.1f} GiB of {nominal:g} GB (what CUDA can allocate of it)"
