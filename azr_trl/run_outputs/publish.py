"""The merged model of a LoRA run: written beside the run directory, pushed to its own repository with its own card.

The run directory (``output_dir``) is what `Trainer.push_to_hub` uploads into the adapter repository, so the merged
bf16 model must not live inside it. It goes to ``<output_dir>-merged`` and to the Hub repository
``<hub_model_id>-merged``, with a model card that names the base model, the adapter repository and the prompt format.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path


logger = logging.getLogger(__name__)

MERGED_SUFFIX = "-merged"


def merged_dir(output_dir: str) -> str:
    """Where the merged model of the run in ``output_dir`` goes: a sibling folder, never inside the run."""
    return os.path.normpath(output_dir) + MERGED_SUFFIX


def merge_adapter(trainer, tokenizer, base_model: str) -> str:
    """Write base model + adapter as one model beside the run directory; all ranks call this, the main one writes.

    Runs on the saved adapter (so it also works after ZeRO-3 sharding), reloading the base in bf16/fp32 rather than
    4-bit: merging into quantized weights loses precision.
    """
    from .prompt_format import PROMPT_FORMAT_FILE

    args = trainer.args
    target = merged_dir(args.output_dir)
    trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process:
        from peft import AutoPeftModelForCausalLM

        dtype = "bfloat16" if args.bf16 else "float32"
        merged = AutoPeftModelForCausalLM.from_pretrained(args.output_dir, dtype=dtype).merge_and_unload()
        merged.save_pretrained(target)
        tokenizer.save_pretrained(target)
        saved_format = Path(args.output_dir) / PROMPT_FORMAT_FILE
        if saved_format.is_file():
            shutil.copy(saved_format, Path(target) / PROMPT_FORMAT_FILE)
        adapter_repo = getattr(trainer, "hub_model_id", None) if args.push_to_hub else None
        merged_model_card(base_model, adapter_repo, trainer.prompt_format, trainer.require_think).save(
            os.path.join(target, "README.md")
        )
        logger.info("Merged model saved to %s", target)
    trainer.accelerator.wait_for_everyone()
    return target


def merged_model_card(base_model: str, adapter_repo: str | None, prompt_format: str, require_think: bool):
    """The merged model's own card (a `huggingface_hub.ModelCard`)."""
    from huggingface_hub import ModelCard, ModelCardData

    from .prompt_format import model_card_section

    data = ModelCardData(
        base_model=base_model if base_model != "default" else None,
        library_name="transformers",
        tags=["azr-trl", "trl", "grpo", "azr", "absolute-zero", "self-play", "merged-lora"],
    )
    adapter = f"[{adapter_repo}](https://huggingface.co/{adapter_repo})" if adapter_repo else "a LoRA adapter"
    body = (
        f"# {adapter_repo.split('/')[-1] + MERGED_SUFFIX if adapter_repo else 'Merged AZR model'}\n\n"
        f"The full model: {adapter} merged into `{base_model}`, trained with Absolute Zero self-play "
        "([arXiv 2505.03335](https://arxiv.org/abs/2505.03335)) with "
        "azr-trl. Load it with `AutoModelForCausalLM.from_pretrained`; no PEFT "
        "is needed.\n" + model_card_section(prompt_format, require_think)
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def push_merged(folder: str, trainer) -> str:
    """Upload the merged folder to ``<hub_model_id>-merged`` (created private or public as the run's repository)."""
    from huggingface_hub import HfApi

    args = trainer.args
    repo_id = f"{trainer.hub_model_id}{MERGED_SUFFIX}"
    api = HfApi(token=args.hub_token)
    api.create_repo(repo_id, private=args.hub_private_repo, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id, folder_path=folder, commit_message="AZR: LoRA adapter merged into the base model"
    )
    logger.info("Merged model pushed to https://huggingface.co/%s", repo_id)
    return repo_id
