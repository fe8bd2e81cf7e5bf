"""The plan printed before a run: rows and generation calls per step, tokens, and memory per training GPU.

Memory is estimated from the model's config alone (the model is built on the ``meta`` device: no weights are read):

- model states (parameters, gradients, optimizer): DeepSpeed's own ZeRO estimators when the run uses ZeRO-2/3
  (``estimate_zero3_model_states_mem_needs`` / ``estimate_zero2_model_states_mem_needs``), plain byte counts
  otherwise, and for LoRA the frozen base plus the trainable adapter;
- activations of one micro-batch: with gradient checkpointing one hidden state per layer plus one layer recomputed
  during the backward pass; without it every layer's tensors. The LM head adds nothing: TRL's fused head never
  materialises the logits;
- generation on the training GPU: vLLM colocate reserves ``vllm_gpu_memory_utilization`` of the GPU, and its KV cache
  is what remains of that share after the weights; HF ``generate`` needs the KV cache of its largest call (and the
  whole model gathered under ZeRO-3). A vLLM server runs on its own GPUs and costs the training GPUs nothing.

Estimates, not measurements: they are meant to catch layouts that cannot fit (tens of GB over), not to tune the
last gigabyte. The sequence length is the completion budget plus an estimate of the prompt (instructions plus K
reference programs) unless the engine's length limit is known (colocate).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


GIB = 1024**3
DEFAULT_GPU_MEMORY_GB = 80.0
# The CUDA context, NCCL buffers and the allocator's fragmentation: memory a process holds besides its tensors.
RUNTIME_OVERHEAD_BYTES = 2 * GIB
# vLLM's own working memory inside its share (activation profile, sampler, CUDA graphs), besides weights and KV cache.
VLLM_OVERHEAD_BYTES = 1.5 * GIB
# Prompt length estimate: the instructions, and one reference program with its input and output per reference.
PROMPT_BASE_TOKENS = 500
PROMPT_TOKENS_PER_REFERENCE = 250
# Bytes per parameter of a bitsandbytes 4-bit weight, quantization constants included.
FOUR_BIT_BYTES = 0.55
# Adapter weights train in float32: the weight, its gradient and AdamW's two moments.
ADAPTER_BYTES_PER_PARAM = 16


@dataclass
class TrainingLayout:
    """How the training processes share the model."""

    processes: int = 1
    zero_stage: int | None = None  # None: no DeepSpeed (DDP or one process)
    offload_optimizer: bool = False
    offload_params: bool = False
    source: str = "one process"

    def describe(self) -> str:
        if self.zero_stage is None:
            how = "DDP" if self.processes > 1 else "no DeepSpeed"
        else:
            offload = [
                name for name, on in (("optimizer", self.offload_optimizer), ("params", self.offload_params)) if on
            ]
            how = f"ZeRO-{self.zero_stage}" + (f", {' and '.join(offload)} offloaded to CPU" if offload else "")
        return f"{self.processes} training process{'es' if self.processes != 1 else ''}, {how} ({self.source})"


@dataclass
class ModelShape:
    """What the plan needs to know about the model, read from its config."""

    total_params: int
    largest_layer_params: int
    num_layers: int
    hidden_size: int
    intermediate_size: int
    kv_dim: int  # num_key_value_heads * head_dim
    max_positions: int | None
    lora_params: int = 0


@dataclass
class MemoryPlan:
    """Per-GPU memory of one training process, in bytes, by component."""

    gpu_bytes: float
    components: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> float:
        return sum(self.components.values())

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.gpu_bytes


def training_layout(
    accelerate_config: str | None, num_training_processes: int | None, env=os.environ
) -> TrainingLayout:
    """The layout of this run: what ``accelerate launch`` set in the environment, else the recipe's
    ``accelerate_config`` file and ``num_training_processes``, else one process without DeepSpeed."""
    if env.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true" or "WORLD_SIZE" in env:
        deepspeed = env.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"
        return TrainingLayout(
            processes=int(env.get("WORLD_SIZE", "1")),
            zero_stage=int(env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")) if deepspeed else None,
            offload_optimizer=env.get("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE", "none") not in ("none", ""),
            offload_params=env.get("ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE", "none") not in ("none", ""),
            source="from the launcher",
        )
    if accelerate_config:
        from accelerate.commands.config.config_args import load_config_from_file

        loaded = load_config_from_file(accelerate_config)
        ds = loaded.deepspeed_config or {}
        deepspeed = str(loaded.distributed_type).endswith("DEEPSPEED")
        return TrainingLayout(
            processes=num_training_processes or loaded.num_processes,
            zero_stage=int(ds.get("zero_stage", 2)) if deepspeed else None,
            offload_optimizer=deepspeed and ds.get("offload_optimizer_device", "none") not in ("none", None),
            offload_params=deepspeed and ds.get("offload_param_device", "none") not in ("none", None),
            source=f"{accelerate_config}",
        )
    return TrainingLayout(processes=num_training_processes or 1)


def model_shape(config, lora_r: int = 0, lora_target_modules: Any = None) -> ModelShape:
    """Count parameters by building the model from ``config`` on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"), _without_zero3_init():
        model = AutoModelForCausalLM.from_config(config)
    params = {id(p): p.numel() for p in model.parameters()}  # tied weights counted once
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    text = config.get_text_config()
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    lora = _lora_params(model, lora_r, lora_target_modules) if lora_r else 0
    return ModelShape(
        total_params=sum(params.values()),
        largest_layer_params=largest,
        num_layers=text.num_hidden_layers,
        hidden_size=text.hidden_size,
        intermediate_size=getattr(text, "intermediate_size", 4 * text.hidden_size),
        kv_dim=kv_heads * head_dim,
        max_positions=getattr(text, "max_position_embeddings", None),
        lora_params=lora,
    )


@contextlib.contextmanager
def _without_zero3_init():
    """Build a model without `deepspeed.zero.Init`. Under a ZeRO-3 launch transformers wraps model construction in
    it, and its collectives would hang or break the other ranks: only the main process plans."""
    from transformers.integrations import deepspeed as hf_deepspeed

    ref = hf_deepspeed._hf_deepspeed_config_weak_ref
    active = ref() if ref is not None else None
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        if active is not None:
            hf_deepspeed.set_hf_deepspeed_config(active)


def _lora_params(model, r: int, targets: Any) -> int:
    """Trainable LoRA parameters: r * (in + out) for every targeted linear layer (``all-linear``: all but the head)."""
    from torch import nn

    if isinstance(targets, str):
        targets = [targets]
    targets = list(targets or ["q_proj", "v_proj"])  # PEFT's default for Qwen/Llama
    total = 0
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or name.endswith("lm_head"):
            continue
        if "all-linear" in targets or name.split(".")[-1] in targets:
            total += r * (module.in_features + module.out_features)
    return total


def prompt_tokens_estimate(num_references: int) -> int:
    return PROMPT_BASE_TOKENS + PROMPT_TOKENS_PER_REFERENCE * num_references


def sequence_tokens(args) -> tuple[int, str]:
    """Longest trained sequence (prompt + completion) and where the number comes from."""
    if args.use_vllm and args.vllm_mode == "colocate" and args.vllm_max_model_length:
        return args.vllm_max_model_length, "vllm_max_model_length"
    prompt = prompt_tokens_estimate(args.num_references)
    return prompt + args.max_completion_length, f"~{prompt} prompt tokens (estimate) + max_completion_length"


def generation_calls(args, processes: int) -> list[tuple[str, int, int]]:
    """``(phase, sequences per process, sequences per engine call)`` of the three generation calls of a step.

    A vLLM server receives every process's prompts in one request; colocated engines and HF ``generate`` see their
    own process's. Monte-Carlo counts are upper bounds: only valid proposals get rollouts.
    """
    kinds = len(args.task_types)
    per_process = [
        ("propose", kinds * args.propose_per_type),
        ("solve", kinds * args.solve_per_type),
        ("monte-carlo", kinds * args.propose_per_type * args.mc_rollouts),
    ]
    shared = args.use_vllm and args.vllm_mode == "server"
    return [(name, n, n * processes if shared else n) for name, n in per_process]


def estimate_memory(
    shape: ModelShape, args, layout: TrainingLayout, gpu_memory_gb: float, *, use_peft: bool, load_in_4bit: bool
) -> MemoryPlan:
    """Memory of one training process on its GPU, by component (see the module docstring)."""
    plan = MemoryPlan(gpu_bytes=gpu_memory_gb * GIB)
    P, procs = shape.total_params, layout.processes
    weight_bytes = 4 if not args.bf16 and not args.fp16 else 2

    # Model states
    if use_peft:
        base = P * (FOUR_BIT_BYTES if load_in_4bit else weight_bytes)
        adapter = shape.lora_params * ADAPTER_BYTES_PER_PARAM
        if layout.zero_stage == 3:
            base, adapter = base / procs, adapter / procs
        plan.components["frozen base weights"] = base
        plan.components[f"LoRA adapter + grads + AdamW ({shape.lora_params / 1e6:.0f}M params)"] = adapter
    elif layout.zero_stage == 3:
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

        _, gpu, _ = estimate_zero3_model_states_mem_needs(
            P,
            shape.largest_layer_params,
            num_gpus_per_node=procs,
            num_nodes=1,
            cpu_offload=layout.offload_optimizer,
            cpu_offload_params=layout.offload_params,
            zero_init=True,
        )
        plan.components["params + grads + optimizer (DeepSpeed ZeRO-3 estimator)"] = gpu
    elif layout.zero_stage in (1, 2):
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

        _, gpu = estimate_zero2_model_states_mem_needs(
            P, num_gpus_per_node=procs, num_nodes=1, cpu_offload=layout.offload_optimizer
        )
        plan.components[f"params + grads + optimizer (DeepSpeed ZeRO-{layout.zero_stage} estimator)"] = gpu
    else:
        # Weights, gradients and AdamW's two moments, all in the model's dtype.
        plan.components["params + grads + AdamW"] = 4 * weight_bytes * P

    # Activations of one micro-batch
    seq, seq_source = sequence_tokens(args)
    tokens = args.per_device_train_batch_size * seq
    h, i, kv = shape.hidden_size, shape.intermediate_size, shape.kv_dim
    # One decoder layer's saved tensors, in bf16 elements per token: norms (kept in fp32), q/k/v, attention and
    # projection outputs, and the four MLP intermediates. Doubled during the backward pass (their gradients).
    layer = 2 * (12 * h + 4 * i + 2 * kv) * 2
    if args.gradient_checkpointing:
        activations = tokens * (shape.num_layers * h * 2 + layer)
    else:
        activations = tokens * shape.num_layers * layer
    activations_key = f"activations (micro-batch {args.per_device_train_batch_size} x {seq} tokens)"
    plan.components[activations_key] = activations
    plan.notes.append(f"sequence length {seq}: {seq_source}")

    # Generation on the training GPU
    kv_per_token = 2 * shape.num_layers * kv * 2  # keys and values, bf16
    if args.use_vllm and args.vllm_mode == "colocate":
        share = args.vllm_gpu_memory_utilization * plan.gpu_bytes
        weights = 2 * P / max(args.vllm_tensor_parallel_size, 1)
        kv_room = share - weights - VLLM_OVERHEAD_BYTES
        max_len = args.vllm_max_model_length or shape.max_positions or seq
        plan.components[f"vLLM colocate share ({args.vllm_gpu_memory_utilization:.2f} of the GPU)"] = share
        per_seq = kv_per_token * max_len
        if kv_room < per_seq:
            plan.warnings.append(
                f"vLLM colocate: {args.vllm_gpu_memory_utilization:.2f} x {gpu_memory_gb:g} GB = {share / GIB:.1f} GB "
                f"leaves {max(kv_room, 0) / GIB:.1f} GB of KV cache after {weights / GIB:.1f} GB of weights, less than "
                f"one {max_len}-token sequence ({per_seq / GIB:.2f} GB): raise vllm_gpu_memory_utilization"
            )
        else:
            plan.notes.append(
                f"vLLM KV cache: {kv_room / GIB:.1f} GB, {int(kv_room // per_seq)} sequences of {max_len} tokens at once"
            )
    elif not args.use_vllm:
        largest = max(n for _, n, _ in generation_calls(args, layout.processes))
        # HF generation runs in chunks of `generation_chunk_size` sequences where the config has that field.
        largest = min(largest, getattr(args, "generation_chunk_size", None) or largest)
        kv_cache = kv_per_token * largest * seq
        gathered = weight_bytes * P if layout.zero_stage == 3 and not use_peft else 0
        generation = kv_cache + gathered
        # Generation and the training pass do not overlap: the larger of the two counts.
        if generation > activations:
            del plan.components[activations_key]
            what = f"HF generate: KV cache of {largest} sequences x {seq} tokens"
            if gathered:
                what += " + the model gathered from ZeRO-3"
            plan.components[what] = generation
            plan.notes.append(f"training activations ({activations / GIB:.1f} GB) are below generation's peak")
        else:
            plan.notes.append(f"HF generate peak {generation / GIB:.1f} GB is below the training activations")
    else:
        plan.notes.append("generation runs on the vLLM server's own GPUs")
    plan.components["CUDA context, NCCL buffers, fragmentation"] = RUNTIME_OVERHEAD_BYTES
    if not plan.fits:
        plan.warnings.insert(
            0,
            f"estimated {plan.total_bytes / GIB:.1f} GB per training GPU exceeds its {gpu_memory_gb:g} GB: lower "
            "per_device_train_batch_size, offload the optimizer (accelerate_configs/zero3_offload.yaml) or add "
            "training GPUs",
        )
    return plan


def format_plan(args, layout: TrainingLayout, plan: MemoryPlan | None, model_note: str) -> str:
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
        f"{rows * layout.processes * sequence_tokens(args)[0] / 1e6:.2f}M trained"
    )
    if plan is None:
        lines.append(f"  memory: {model_note}")
        return "\n".join(lines)
    lines.append(f"  memory per training GPU ({model_note}):")
    for name, value in plan.components.items():
        lines.append(f"    {value / GIB:7.1f} GB  {name}")
    verdict = "fits" if plan.fits else "DOES NOT FIT"
    lines.append(f"    {plan.total_bytes / GIB:7.1f} GB  total of {plan.gpu_bytes / GIB:g} GB: {verdict}")
    lines += [f"    note: {note}" for note in plan.notes]
    lines += [f"  WARNING: {warning}" for warning in plan.warnings]
    return "\n".join(lines)


def plan_run(script_args, training_args, model_args):
    """The plan of a parsed recipe (script arguments, `AZRConfig`, `ModelConfig`) as text, and its memory estimate
    (None without a model config, or for a CPU run)."""
    layout = training_layout(script_args.accelerate_config, script_args.num_training_processes)
    plan = None
    if training_args.use_cpu:
        config, note = None, "use_cpu: no GPU memory plan"
    else:
        config, note = _model_config(model_args, training_args)
    if config is not None:
        shape = model_shape(config, model_args.lora_r if model_args.use_peft else 0, model_args.lora_target_modules)
        plan = estimate_memory(
            shape,
            training_args,
            layout,
            _gpu_memory_gb(script_args),
            use_peft=model_args.use_peft,
            load_in_4bit=model_args.load_in_4bit,
        )
        note = f"{shape.total_params / 1e9:.2f}B parameters, from the config of {model_args.model_name_or_path}"
    return format_plan(training_args, layout, plan, note), plan


def _model_config(model_args, training_args):
    """The model's config without its weights: a local folder, the converted default model, or the Hub if reachable."""
    from transformers import AutoConfig

    from .offline_models import OFFLINE_MODELS, offline_model_dir

    name = model_args.model_name_or_path
    if name in OFFLINE_MODELS:
        alias, name = name, str(offline_model_dir(name))
        if not (Path(name) / "config.json").is_file():
            return None, f"the model {alias} is not converted yet (`azr-trl model-path {alias}`)"
    try:
        config = AutoConfig.from_pretrained(
            name, revision=model_args.model_revision, trust_remote_code=training_args.trust_remote_code
        )
    except Exception as err:  # offline, gated, no such repo: the plan goes on without memory
        reason = " ".join(str(err).split())[:160]
        return None, f"no memory estimate: the config of {name} is not available here ({reason})"
    return config, ""


def _gpu_memory_gb(script_args) -> float:
    import torch

    if script_args.gpu_memory_gb is not None:
        return script_args.gpu_memory_gb
    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory / GIB
    return DEFAULT_GPU_MEMORY_GB
