"""Absolute Zero self-play training script.

Usage:

    # one process (CPU or one GPU)
    python -m azr_trl.launch --config recipes/smollm2-135m/cpu_demo.yaml
    azr-trl train --config recipes/smollm2-135m/cpu_demo.yaml --max_steps 5

    # several GPUs, e.g. 2 for the vLLM server and 2 training processes with DeepSpeed ZeRO-3 (CPU offload)
    CUDA_VISIBLE_DEVICES=0,1 trl vllm-serve --model Qwen/Qwen2.5-Coder-7B --tensor_parallel_size 2 \\
        --max_model_len 16384
    CUDA_VISIBLE_DEVICES=2,3 accelerate launch --config_file accelerate_configs/zero3_offload.yaml --num_processes 2 \\
        -m azr_trl.launch --config recipes/qwen2.5-coder-7b/paper_4gpu.yaml

Every recipe key is a field of `AZRScriptArguments`, `AZRConfig` or TRL's `ModelConfig`; command-line flags override
the recipe. Recipe problems (unknown keys, missing files, impossible batch arithmetic) are reported before any model
is loaded (`preflight.py`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .preflight import (
    RecipeError,
    check_environment,
    check_inputs,
    check_launch,
    check_recipe_keys,
    has_gpu,
    load_reward_func,
    looks_like_path,
    recipe_path,
    wants_dry_run,
)


if TYPE_CHECKING:
    from trl import ModelConfig

    from .azr_config import AZRConfig


logger = logging.getLogger("azr_trl.launch")

# Qwen3 base models add these as special tokens whose embeddings were never trained (reference README).
QWEN3_THINK_TOKENS = ("<think>", "</think>")


@dataclass
class AZRScriptArguments:
    """Options of the training script itself (everything else lives in `AZRConfig` and `ModelConfig`)."""

    chat_template: str | None = field(
        default=None,
        metadata={
            "help": "Chat template to use instead of the tokenizer's: a Jinja string, or the path of a .jinja file."
        },
    )
    remove_qwen3_think_tokens: bool = field(
        default=False,
        metadata={
            "help": "Drop the added <think>/</think> special tokens so they tokenize as plain text, and ban their ids "
            "in generation (banned_token_ids). Qwen3 base models never trained those embeddings (the AZR reference "
            "README's fix)."
        },
    )
    merge_adapter_on_save: bool = field(
        default=False,
        metadata={
            "help": "With use_peft: after training also write the adapter merged into the base model to "
            "`<output_dir>-merged`, beside the run (pushed to `<hub_model_id>-merged`, with its own model card, when "
            "push_to_hub is set)."
        },
    )
    reward_funcs: list[str] | None = field(
        default=None,
        metadata={
            "help": "Extra reward functions as dotted import paths (`my_pkg.rewards.brevity`), added to the AZR "
            "proposer and solver rewards. Each has TRL's signature and receives the row columns `role`, "
            "`task_type`, `format_ok`, `valid`, `solve_rate`, `correct`, `verdict`; return None for rows it skips."
        },
    )
    auto_resume: bool = field(
        default=True,
        metadata={"help": "Resume from the last checkpoint-* in output_dir when resume_from_checkpoint is unset."},
    )
    report_dir: str | None = field(
        default=None,
        metadata={
            "help": "Also write the HTML/PNG run report here after training (main process). Unset: run "
            "`azr-trl report OUTPUT_DIR` afterwards."
        },
    )
    progress: bool = field(
        default=True,
        metadata={"help": "One line per logged step with rewards per task type and role, instead of the dict dump."},
    )
    summary: bool = field(default=True, metadata={"help": "Print an end-of-run summary on the main process."})
    dry_run: bool = field(
        default=False,
        metadata={
            "help": "Check the recipe, print the plan (rows per step, generation calls, tokens, memory per GPU) and "
            "exit without loading weights."
        },
    )
    gpu_memory_gb: float | None = field(
        default=None,
        metadata={
            "help": "Nominal memory of one training GPU in GB, for the memory plan, which counts 99.5 percent of it "
            "as usable (an H100 80 GB shows 79.6 GiB to CUDA). None: what torch.cuda reports, else 80 (the paper "
            "recipes' A100/H100)."
        },
    )
    accelerate_config: str | None = field(
        default=None,
        metadata={
            "help": "The accelerate config file this recipe is launched with (its header's --config_file), read by "
            "the memory plan for the ZeRO stage and offload. Under `accelerate launch` the launcher's settings win."
        },
    )
    num_training_processes: int | None = field(
        default=None,
        metadata={
            "help": "Training processes this recipe is written for (its header's --num_processes): the memory plan "
            "reads it, and training refuses to start when the launch runs another number of processes (the batch "
            "per step scales with it), unless allow_process_count_mismatch is set."
        },
    )
    allow_process_count_mismatch: bool = field(
        default=False,
        metadata={
            "help": "Train even though the launch runs another number of processes than num_training_processes, "
            "with the batch per step scaled by the ratio (propose_per_type and solve_per_type are per process)."
        },
    )


def make_parser(prog: str | None = None):
    """The script's `TrlParser` over (script arguments, `AZRConfig`, `ModelConfig`)."""
    from trl import ModelConfig, TrlParser

    from .azr_config import AZRConfig

    return TrlParser((AZRScriptArguments, AZRConfig, ModelConfig), prog=prog)


def parse_args(
    argv: list[str] | None = None, prog: str | None = None
) -> tuple[AZRScriptArguments, AZRConfig, ModelConfig]:
    """Parse ``--config recipe.yaml [--field value ...]`` and check everything that can be checked without a model.

    Raises `RecipeError` with a one-line message naming the key, file or field at fault.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser(prog)
    recipe = recipe_path(argv)
    where = f"{recipe}: " if recipe else ""
    if recipe is not None:
        check_recipe_keys(parser, recipe)
    # A dry run plans for the recipe's GPUs, which this machine need not have: let bf16 through.
    planning_without_gpu = wants_dry_run(argv) and not has_gpu()
    try:
        script_args, training_args, model_args = parser.parse_args_and_config(
            [*argv, "--use_cpu", "true"] if planning_without_gpu else argv
        )
    except ValueError as err:
        message = str(err)
        if message.startswith("Some specified arguments are not used by the HfArgumentParser"):
            # Unknown command-line flags (recipe keys were checked above).
            unknown = message.split(":", 1)[1].strip()
            raise RecipeError(f"unknown command-line argument(s) {unknown}") from None
        if message.startswith("Your setup doesn't support bf16/gpu") and not has_gpu():
            raise RecipeError(
                f"{where}bf16: true needs a GPU and this machine has none. To train on CPU add "
                "`--use_cpu true --bf16 false`; to see the GPU plan without training, add `--dry-run`"
            ) from None
        raise RecipeError(f"{where}{message}") from None
    if planning_without_gpu:
        training_args.use_cpu = False  # the plan is for the recipe's hardware; nothing runs here
    check_inputs(script_args, training_args, model_args, where=where)
    return script_args, training_args, model_args


################
# Model loading
################
def get_tokenizer(model_path: str, script_args: AZRScriptArguments, model_args: ModelConfig, training_args: AZRConfig):
    """Load the tokenizer, with the recipe's chat template and the optional Qwen3 think-token fix (which also adds
    the removed token ids to ``training_args.banned_token_ids``)."""
    from transformers import AutoTokenizer

    kwargs = {"revision": model_args.model_revision, "trust_remote_code": training_args.trust_remote_code}
    tokenizer = AutoTokenizer.from_pretrained(model_path, **kwargs)
    if script_args.remove_qwen3_think_tokens:
        added = tokenizer.get_added_vocab()
        tokenizer = remove_added_tokens(tokenizer, QWEN3_THINK_TOKENS)
        # The model can still sample their ids; no text maps to them any more, so generation must never emit them.
        think_ids = [added[t] for t in QWEN3_THINK_TOKENS if t in added]
        training_args.banned_token_ids = sorted({*training_args.banned_token_ids, *think_ids})
    if script_args.chat_template:
        template = script_args.chat_template
        tokenizer.chat_template = Path(template).read_text() if looks_like_path(template) else template
    return tokenizer


def remove_added_tokens(tokenizer, contents: tuple[str, ...]):
    """Return a copy of ``tokenizer`` where the added tokens ``contents`` are ordinary text again.

    Added tokens live in two files of a saved fast tokenizer: ``tokenizer.json`` (``added_tokens``, which the Rust
    tokenizer matches before BPE) and ``tokenizer_config.json`` (``added_tokens_decoder``). Dropping them from both and
    reloading makes ``"<think>"`` split into regular pieces; the model's embedding matrix is unchanged.
    """
    import tempfile

    from transformers import AutoTokenizer

    present = [t for t in contents if t in tokenizer.get_added_vocab()]
    if not present:
        logger.warning("remove_qwen3_think_tokens: the tokenizer has no added %s tokens; nothing to remove", contents)
        return tokenizer
    with tempfile.TemporaryDirectory(prefix="azr-tokenizer-") as tmp:
        tokenizer.save_pretrained(tmp)
        tok_json = Path(tmp) / "tokenizer.json"
        data = json.loads(tok_json.read_text())
        data["added_tokens"] = [t for t in data.get("added_tokens", []) if t.get("content") not in contents]
        tok_json.write_text(json.dumps(data))
        cfg_json = Path(tmp) / "tokenizer_config.json"
        cfg = json.loads(cfg_json.read_text())
        decoder = cfg.get("added_tokens_decoder", {})
        cfg["added_tokens_decoder"] = {k: v for k, v in decoder.items() if v.get("content") not in contents}
        for key in ("additional_special_tokens", "extra_special_tokens"):
            if isinstance(cfg.get(key), list):
                cfg[key] = [t for t in cfg[key] if t not in contents]
        cfg_json.write_text(json.dumps(cfg))
        fixed = AutoTokenizer.from_pretrained(tmp)
    logger.info("Removed the added tokens %s: they now tokenize as text", present)
    return fixed


def get_model(model_path: str, model_args: ModelConfig, training_args: AZRConfig):
    """Load the policy with the recipe's dtype, attention implementation and (for QLoRA) quantization."""
    import torch
    from accelerate import PartialState
    from transformers import AutoModelForCausalLM
    from trl import get_quantization_config

    dtype = model_args.dtype
    if dtype not in (None, "auto"):
        dtype = getattr(torch, dtype)
    kwargs = {
        "revision": model_args.model_revision,
        "trust_remote_code": training_args.trust_remote_code,
        "attn_implementation": model_args.attn_implementation,
        "dtype": dtype,
    }
    quantization_config = get_quantization_config(model_args)
    if quantization_config is not None:
        # bitsandbytes weights must be placed on this process's GPU at load time.
        kwargs["quantization_config"] = quantization_config
        kwargs["device_map"] = {"": PartialState().local_process_index}
    if training_args.model_init_kwargs:
        kwargs.update(training_args.model_init_kwargs)
    return AutoModelForCausalLM.from_pretrained(model_path, **kwargs)


def main(script_args: AZRScriptArguments, training_args: AZRConfig, model_args: ModelConfig) -> None:
    """Train with Absolute Zero self-play as the parsed recipe says."""
    import datasets
    import transformers
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.trainer_utils import get_last_checkpoint
    from trl import get_peft_config

    from . import AZRTrainer
    from .offline_models import resolve_model_path
    from .run_outputs.checkpoints import BUFFER_FILE
    from .run_outputs.progress import AZRProgressCallback
    from .run_outputs.publish import merge_adapter, push_merged

    ###############
    # Setup logging
    ###############
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    # TRL 1.16 still calls transformers' pre-5.x name every step; the notice is not actionable for a user.
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    log_level = training_args.get_process_log_level()
    is_main = training_args.process_index == 0
    logging.getLogger("azr_trl").setLevel(logging.INFO if is_main else log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    state = training_args.distributed_state
    logger.info(
        "Model %s, output %s, distributed: %s, %d processes",
        model_args.model_name_or_path,
        training_args.output_dir,
        state.distributed_type.value if hasattr(state.distributed_type, "value") else state.distributed_type,
        state.num_processes,
    )

    #################
    # Last checkpoint
    #################
    checkpoint = training_args.resume_from_checkpoint
    if checkpoint is None and script_args.auto_resume and os.path.isdir(training_args.output_dir):
        checkpoint = get_last_checkpoint(training_args.output_dir)
        if checkpoint is not None:
            logger.info("Resuming from %s (set auto_resume: false to start over)", checkpoint)

    ######################
    # Tokenizer and model
    ######################
    model_path = resolve_model_path(model_args.model_name_or_path)
    tokenizer = get_tokenizer(model_path, script_args, model_args, training_args)
    model = get_model(model_path, model_args, training_args)

    #########
    # Trainer
    #########
    trainer = AZRTrainer(
        model=model,
        reward_funcs=[load_reward_func(path) for path in script_args.reward_funcs or []] or None,
        args=training_args,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        callbacks=[AZRProgressCallback()] if script_args.progress else None,
    )
    if script_args.progress:
        # Our line per step replaces transformers' dump of the whole metrics dict.
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)

    ###############
    # Training loop
    ###############
    try:
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
        metrics = train_result.metrics
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
        # Ranks must agree on the buffer: they all add the same gathered tasks in the same order.
        line = f"[rank {training_args.process_index}] azr buffer sha256={trainer.buffer.state_fingerprint()}"
        print(line + _zero3_shard_note(trainer.model), flush=True)

        ##################################
        # Save model, buffer and model card
        ##################################
        trainer.save_model(training_args.output_dir)
        if trainer.accelerator.is_main_process:
            trainer.buffer.save(os.path.join(training_args.output_dir, BUFFER_FILE))
            trainer.create_model_card(model_name=_model_name(training_args), tags=["azr-trl"])
            logger.info("Model saved to %s", training_args.output_dir)
        merged_dir = None
        if script_args.merge_adapter_on_save:
            merged_dir = merge_adapter(trainer, tokenizer, model_args.model_name_or_path)

        #############
        # Push to Hub
        #############
        if training_args.push_to_hub:
            trainer.push_to_hub(tags=["azr-trl"])
            if merged_dir is not None and trainer.accelerator.is_main_process:
                push_merged(merged_dir, trainer)
    finally:
        trainer.close()

    ########################
    # Report and run summary
    ########################
    if trainer.accelerator.is_main_process:
        report_file = None
        if script_args.report_dir:
            from .run_outputs.report import write_report

            report_file = write_report(training_args.output_dir, script_args.report_dir)
        if script_args.summary:
            from .run_outputs.summary import print_summary

            print_summary(training_args.output_dir, trainer.state.log_history, report_file=report_file)

    # Finish the trackers and destroy the process group (transformers >= 5.18)
    if hasattr(trainer, "end"):
        trainer.end()


def _zero3_shard_note(model) -> str:
    """Under DeepSpeed ZeRO-3, how much of the model this rank holds (parameters carry ``ds_numel``/``ds_tensor``)."""
    params = [p for p in model.parameters() if hasattr(p, "ds_numel") and hasattr(p, "ds_tensor")]
    if not params:
        return ""
    local = sum(p.ds_tensor.numel() for p in params)
    total = sum(p.ds_numel for p in params)
    return f", zero3 shard {local / 1e6:.1f}M of {total / 1e6:.1f}M parameters"


def _model_name(training_args: AZRConfig) -> str:
    if training_args.hub_model_id:
        return training_args.hub_model_id.split("/")[-1]
    return Path(training_args.output_dir).name


def run(argv: list[str] | None = None, prog: str = "python -m azr_trl.launch") -> int:
    """Parse, validate and train; recipe errors become one line on stderr and exit code 2."""
    from .offline_models import OfflineModelUnavailableError

    try:
        script_args, training_args, model_args = parse_args(argv, prog=prog)
        if not script_args.dry_run:
            check_environment(model_args)
            check_launch(script_args)
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if script_args.dry_run or os.environ.get("RANK", "0") == "0":
        from .run_plan import plan_run

        text, plan = plan_run(script_args, training_args, model_args)
        print(text, flush=True)
        if plan is not None and plan.refusal is not None:
            print(f"error: {plan.refusal}", file=sys.stderr)
            return 2
        if script_args.dry_run:
            return 0
    try:
        main(script_args, training_args, model_args)
    except OfflineModelUnavailableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run())
