"""The memory one training process needs on its GPU, as an upper bound of the run's tensors.

Memory is estimated from the model's config alone (the model is built on the ``meta`` device: no weights are read):

- model states (parameters, gradients, optimizer): DeepSpeed's own ZeRO estimators when the run uses ZeRO-2/3
  (``estimate_zero3_model_states_mem_needs`` / ``estimate_zero2_model_states_mem_needs``), plain byte counts
  otherwise, and for LoRA the frozen base plus the trainable adapter;
- the largest of the phases that take turns on the GPU: the activations of one micro-batch (with gradient
  checkpointing one hidden state per layer plus one layer recomputed during the backward pass; without it every
  layer's tensors; TRL's fused head never materialises the logits), HF ``generate`` (the KV cache of its largest call
  and, under ZeRO-3, the whole model gathered), and the in-training evaluation on HF ``generate`` (the same, for its
  batch). vLLM colocate reserves ``vllm_gpu_memory_utilization`` of the GPU for the whole run; a vLLM server runs on
  its own GPUs and costs the training GPUs nothing, evaluation included;
- the CUDA context, NCCL buffers and fragmentation.

Every micro-batch is padded to the longest prompt plus the longest completion of the step, so the sequence length is
the prompt ceiling (``max_prompt_tokens``, lower where the engine's limit leaves less) plus ``max_completion_length``:
the plan holds for the longest step the run can take. The plan of a parsed recipe, as printed, is in ``run_plan.py``.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any


GIB = 1024**3
DEFAULT_GPU_MEMORY_GB = 80.0
# What CUDA can allocate of a GPU sold as N GB: an H100 80 GB shows 79.6 GiB (81,559 MiB); the rest is the driver's.
USABLE_GPU_FRACTION = 79.6 / 80
# The CUDA context, NCCL buffers and the allocator's fragmentation: memory a process holds besides its tensors.
RUNTIME_OVERHEAD_BYTES = 2 * GIB
# vLLM's own working memory inside its share (activation profile, sampler, CUDA graphs), besides weights and KV cache.
VLLM_OVERHEAD_BYTES = 1.5 * GIB
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
    """Per-GPU memory of one training process, in bytes, by component, against what CUDA can allocate of the GPU."""

    gpu_bytes: float  # usable
    components: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    refusal: str | None = None  # why the run cannot start with this layout

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


def prompt_ceiling(args, max_positions: int | None = None) -> tuple[int, str]:
    """The longest prompt the run admits and what sets it: ``max_prompt_tokens``, or the engine's limit next to
    ``max_completion_length`` where the plan knows that limit (colocate, HF generate) and it leaves less. The trainer's
    prompt budget applies the same rule with the engine it runs."""
    if args.use_vllm and args.vllm_mode == "server":
        engine, what = None, ""  # the server's --max_model_len is asked at start; the ceiling bounds it here
    elif args.use_vllm:
        engine, what = args.vllm_max_model_length or max_positions, "the colocated engine's max_model_len"
    else:
        engine, what = max_positions, "the model's max_position_embeddings"
    if engine is not None and engine - args.max_completion_length < args.max_prompt_tokens:
        return engine - args.max_completion_length, f"{what} {engine} - max_completion_length"
    return args.max_prompt_tokens, "max_prompt_tokens"


def sequence_tokens(args, max_positions: int | None = None) -> tuple[int, str]:
    """Longest trained sequence (the prompt ceiling + the completion budget) and where the number comes from."""
    prompt, source = prompt_ceiling(args, max_positions)
    return prompt + args.max_completion_length, f"{prompt} prompt tokens ({source}) + max_completion_length"


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
    shape: ModelShape, args, layout: TrainingLayout, gpu_bytes: float, *, use_peft: bool, load_in_4bit: bool
) -> MemoryPlan:
    """Memory of one training process on a GPU of which CUDA can allocate ``gpu_bytes`` (see the module docstring)."""
    plan = MemoryPlan(gpu_bytes=gpu_bytes)
    P, procs = shape.total_params, layout.processes
    weight_bytes = 4 if not args.bf16 and not args.fp16 else 2
    base_bytes = FOUR_BIT_BYTES if use_peft and load_in_4bit else weight_bytes
    plan.components.update(_model_states(shape, layout, weight_bytes, base_bytes, use_peft))

    # The phases that take turns on the GPU: the largest one counts.
    seq, seq_source = sequence_tokens(args, shape.max_positions)
    plan.notes.append(f"sequence length {seq}: {seq_source}")
    phases = {_activations_key(args, seq): _activations(shape, args, seq)}
    kv_per_token = 2 * shape.num_layers * shape.kv_dim * 2  # keys and values, bf16
    # Generation under ZeRO-3 gathers the whole model next to its shards (trl's unwrap_model_for_generation).
    gathered = base_bytes * P if layout.zero_stage == 3 else 0
    gathered_note = " + the model gathered from ZeRO-3" if gathered else ""
    if args.use_vllm and args.vllm_mode == "colocate":
        _colocated_engine(plan, shape, args, seq, kv_per_token)
    elif args.use_vllm:
        plan.notes.append("generation (and evaluation) runs on the vLLM server's own GPUs")
    else:
        largest = max(n for _, n, _ in generation_calls(args, procs))
        largest = min(largest, args.generation_chunk_size)  # HF generate takes at most this many per call
        what = f"HF generate: KV cache of {largest} sequences x {seq} tokens{gathered_note}"
        phases[what] = kv_per_token * largest * seq + gathered
        if args.eval_benchmarks:
            eval_seq = seq - args.max_completion_length + (args.eval_max_new_tokens or args.max_completion_length)
            batch = args.generation_chunk_size
            what = f"evaluation (HF generate): KV cache of {batch} sequences x {eval_seq} tokens{gathered_note}"
            phases[what] = kv_per_token * batch * eval_seq + gathered
    peak = max(phases, key=phases.get)
    plan.components[peak] = phases[peak]
    for name, value in phases.items():
        if name != peak:
            plan.notes.append(f"{name.split(':')[0]}: {value / GIB:.1f} GiB, below the peak above")
    plan.components["CUDA context, NCCL buffers, fragmentation"] = RUNTIME_OVERHEAD_BYTES

    evaluation = next((name for name in phases if name.startswith("evaluation")), None)
    if evaluation is not None:
        with_evaluation = plan.total_bytes - phases[peak] + phases[evaluation]
        if with_evaluation > plan.gpu_bytes:
            plan.refusal = (
                f"the in-training evaluation (eval_benchmarks) on HF generate takes {phases[evaluation] / GIB:.1f} GiB "
                f"({evaluation.split(': ', 1)[1]}), which brings a training GPU to {with_evaluation / GIB:.1f} GiB of "
                f"{plan.gpu_bytes / GIB:.1f} GiB usable: evaluate through vLLM (use_vllm: true), lower "
                "eval_max_new_tokens or generation_chunk_size, or leave eval_benchmarks empty and run `azr-trl eval` "
                "on the checkpoints"
            )
    if not plan.fits:
        plan.warnings.insert(
            0,
            f"estimated {plan.total_bytes / GIB:.1f} GiB per training GPU exceeds its {plan.gpu_bytes / GIB:.1f} GiB "
            "usable: lower per_device_train_batch_size or max_prompt_tokens, offload the optimizer "
            "(accelerate_configs/zero3_offload.yaml) or add training GPUs",
        )
    return plan


def _model_states(shape: ModelShape, layout: TrainingLayout, weight_bytes, base_bytes, use_peft) -> dict[str, float]:
    """Parameters, gradients and optimizer state on one GPU, by component."""
    P, procs = shape.total_params, layout.processes
    if use_peft:
        base = P * base_bytes
        adapter = shape.lora_params * ADAPTER_BYTES_PER_PARAM
        if layout.zero_stage == 3:
            base, adapter = base / procs, adapter / procs
        return {
            "frozen base weights": base,
            f"LoRA adapter + grads + AdamW ({shape.lora_params / 1e6:.0f}M params)": adapter,
        }
    if layout.zero_stage == 3:
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
        return {"params + grads + optimizer (DeepSpeed ZeRO-3 estimator)": gpu}
    if layout.zero_stage in (1, 2):
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

        _, gpu = estimate_zero2_model_states_mem_needs(
            P, num_gpus_per_node=procs, num_nodes=1, cpu_offload=layout.offload_optimizer
        )
        return {f"params + grads + optimizer (DeepSpeed ZeRO-{layout.zero_stage} estimator)": gpu}
    # Weights, gradients and AdamW's two moments, all in the model's dtype.
    return {"params + grads + AdamW": 4 * weight_bytes * P}


def _activations_key(args, seq: int) -> str:
    return f"activations (micro-batch {args.per_device_train_batch_size} x {seq} tokens)"


def _activations(shape: ModelShape, args, seq: int) -> float:
    """Saved tensors of one micro-batch of ``seq``-token rows through the forward and backward pass."""
    tokens = args.per_device_train_batch_size * seq
    h, i, kv = shape.hidden_size, shape.intermediate_size, shape.kv_dim
    # One decoder layer's saved tensors, in bf16 elements per token: norms (kept in fp32), q/k/v, attention and
    # projection outputs, and the four MLP intermediates. Doubled during the backward pass (their gradients).
    layer = 2 * (12 * h + 4 * i + 2 * kv) * 2
    if args.gradient_checkpointing:
        return tokens * (shape.num_layers * h * 2 + layer)
    return tokens * shape.num_layers * layer


def _colocated_engine(plan: MemoryPlan, shape: ModelShape, args, seq: int, kv_per_token: int) -> None:
    """The colocated vLLM engine's share of the GPU, and whether its KV cache holds one sequence after the weights."""
    share = args.vllm_gpu_memory_utilization * plan.gpu_bytes
    weights = 2 * shape.total_params / max(args.vllm_tensor_parallel_size, 1)
    kv_room = share - weights - VLLM_OVERHEAD_BYTES
    max_len = args.vllm_max_model_length or shape.max_positions or seq
    plan.components[f"vLLM colocate share ({args.vllm_gpu_memory_utilization:.2f} of the GPU)"] = share
    per_seq = kv_per_token * max_len
    if kv_room < per_seq:
        plan.warnings.append(
            f"vLLM colocate: {args.vllm_gpu_memory_utilization:.2f} x {plan.gpu_bytes / GIB:.1f} GiB = "
            f"{share / GIB:.1f} GiB leaves {max(kv_room, 0) / GIB:.1f} GiB of KV cache after {weights / GIB:.1f} GiB "
            f"of weights, less than one {max_len}-token sequence ({per_seq / GIB:.2f} GiB): raise "
            "vllm_gpu_memory_utilization"
        )
    else:
        plan.notes.append(
            f"vLLM KV cache: {kv_room / GIB:.1f} GiB, {int(kv_room // per_seq)} sequences of {max_len} tokens at once"
        )
