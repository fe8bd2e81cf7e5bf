"""Generation backends for evaluation and ``azr-trl seed``: batched transformers ``generate`` and vLLM.

Both take prompts in the project's two formats (a string for ``r1``, a message list for ``chat``), tokenize them the
way TRL does during training (chat template with the generation prompt, or the plain string with the tokenizer's
special tokens), and return ``num_samples`` completions per prompt. Greedy decoding when ``temperature`` is 0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


logger = logging.getLogger(__name__)

Prompt = str | list[dict[str, Any]]


@dataclass
class SamplingSettings:
    """How completions are drawn.

    Args:
        max_new_tokens: completion length cap.
        num_samples: completions per prompt (pass@k needs k <= num_samples).
        temperature: 0 means greedy decoding (only valid with ``num_samples == 1``).
        top_p: nucleus sampling when sampling.
        seed: seeds the sampler of every call (each HF batch, each vLLM request) so that sampled runs repeat; None
            draws from the backend's running random stream instead (seeded once by its owner), so that calls with
            the same prompts, as the rounds of seed generation make, bring different samples.
        banned_token_ids: token ids no completion contains, as in training (``AZRConfig.banned_token_ids``): HF
            ``suppress_tokens``, vLLM ``logit_bias`` -100 (the strongest bias vLLM accepts).
    """

    max_new_tokens: int = 1024
    num_samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = 0
    banned_token_ids: tuple[int, ...] = ()

    def __post_init__(self):
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.greedy and self.num_samples > 1:
            raise ValueError("num_samples > 1 needs sampling: set a temperature > 0")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def tokenize_prompts(tokenizer, prompts: Sequence[Prompt]) -> list[list[int]]:
    """Token ids of each prompt: chat prompts through the chat template (with the assistant generation prompt),
    plain strings through the tokenizer, as TRL's GRPOTrainer tokenizes them."""
    ids: list[list[int]] = []
    for prompt in prompts:
        if isinstance(prompt, str):
            ids.append(list(tokenizer(prompt)["input_ids"]))
        else:
            if not getattr(tokenizer, "chat_template", None):
                raise ValueError("Chat-format prompts need a tokenizer with a chat template; use --prompt-format r1")
            out = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)
            ids.append(list(out["input_ids"]))
    return ids


def prompt_length(tokenizer, prompt: Prompt) -> int:
    """Tokens of one prompt as the generators feed it to the model."""
    return len(tokenize_prompts(tokenizer, [prompt])[0])


def model_token_limit(model) -> int | None:
    """Most tokens (prompt + completion) a transformers model takes: its maximum positions; None if it states none."""
    config = model.config.get_text_config()
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return None if limit is None else int(limit)


def render_prompt(tokenizer, prompt: Prompt) -> str:
    """The prompt text as the model sees it (for records)."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)


def load_hf_model(path: str, dtype: str = "auto", device: str | None = None):
    """A causal LM in eval mode (on the GPU when there is one, unless ``device`` says otherwise) and its tokenizer,
    for :class:`HFGenerator`. ``dtype`` is ``auto`` or a torch dtype name. Loading errors pass through unchanged."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype if dtype == "auto" else getattr(torch, dtype))
    model.to(device).eval()
    return model, tokenizer


class HFGenerator:
    """Batched `generate` with a transformers model (the live training model in the callback).

    Prompts are sorted by length so each batch pads little, and completions are returned in the input order.
    """

    def __init__(self, model, tokenizer, batch_size: int = 8):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    def token_limit(self) -> int | None:
        """Most tokens (prompt + completion) the model takes; None if it states no limit."""
        return model_token_limit(self.model)

    def _pad_id(self) -> int:
        for candidate in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id):
            if candidate is not None:
                return candidate
        return 0

    def _generation_config(self, settings: SamplingSettings):
        from transformers import GenerationConfig

        own = getattr(self.model, "generation_config", None)
        eos = getattr(own, "eos_token_id", None)
        if eos is None:
            eos = self.tokenizer.eos_token_id
        kwargs: dict[str, Any] = {
            "max_new_tokens": settings.max_new_tokens,
            "num_return_sequences": settings.num_samples,
            "pad_token_id": self._pad_id(),
            "eos_token_id": eos,
            "use_cache": True,  # training configs often turn the cache off for gradient checkpointing
        }
        if settings.banned_token_ids:
            kwargs["suppress_tokens"] = sorted(set(settings.banned_token_ids))
        if settings.greedy:
            kwargs["do_sample"] = False
        else:
            kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=0)
        # A fresh config: the model's own may carry sampling defaults that must not leak into a greedy evaluation.
        return GenerationConfig(**kwargs)

    def generate(
        self, prompts: Sequence[Prompt], settings: SamplingSettings, progress: bool = True, desc: str = "generate"
    ) -> list[list[str]]:
        """``settings.num_samples`` completions for each prompt, decoded without special tokens."""
        import torch
        from tqdm.auto import tqdm

        prompt_ids = tokenize_prompts(self.tokenizer, prompts)
        order = sorted(range(len(prompt_ids)), key=lambda i: -len(prompt_ids[i]))
        config = self._generation_config(settings)
        device = next(self.model.parameters()).device
        pad = self._pad_id()
        out: list[list[str]] = [[] for _ in prompt_ids]
        with tqdm(total=len(order), desc=desc, unit="prompt", disable=not progress) as bar:
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                width = max(len(prompt_ids[i]) for i in batch)
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                attention = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    ids = prompt_ids[i]
                    input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)  # left padding
                    attention[row, width - len(ids) :] = 1
                if not settings.greedy and settings.seed is not None:
                    # One seed per batch: sampled results do not depend on what ran before.
                    torch.manual_seed(settings.seed + start)
                with torch.no_grad():
                    generated = self.model.generate(
                        input_ids=input_ids.to(device), attention_mask=attention.to(device), generation_config=config
                    )
                new_tokens = generated[:, width:]
                texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
                for row, i in enumerate(batch):
                    k = settings.num_samples
                    out[i] = texts[row * k : (row + 1) * k]
                bar.update(len(batch))
        return out


class TrainerEngineGenerator:
    """Generation through an `AZRTrainer`'s own vLLM engine (server or colocated), for the in-training evaluation.

    The engine holds the weights of the current step (a step that changed syncs them first, as training does), keeps
    the run's banned tokens out, and costs the training GPUs no gathered model. Every rank must call `generate` with
    as many prompts: a vLLM server gathers every rank's prompts into one request.
    """

    def __init__(self, trainer):
        self.trainer = trainer

    def generate(
        self, prompts: Sequence[Prompt], settings: SamplingSettings, progress: bool = True, desc: str = "generate"
    ) -> list[list[str]]:
        n = settings.num_samples
        repeated = [prompt for prompt in prompts for _ in range(n)]
        texts = self.trainer._sample(
            repeated, num_generations=n, temperature=settings.temperature, max_tokens=settings.max_new_tokens
        )[3]
        return [texts[i * n : (i + 1) * n] for i in range(len(prompts))]


class VLLMGenerator:
    """Generation with `vllm.LLM` (GPU only). The model path is loaded by vLLM; prompts are tokenized here so that the
    chat template and special tokens match the HF backend exactly."""

    def __init__(
        self,
        model_path: str,
        tokenizer,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        seed: int = 0,
    ):
        try:
            from vllm import LLM
        except ImportError as err:
            raise ImportError(
                "--backend vllm needs the 'vllm' package and a GPU (pip install 'azr-trl[vllm]'); "
                "use --backend hf otherwise."
            ) from err
        self.tokenizer = tokenizer
        self.llm = LLM(
            model=model_path,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            seed=seed,
        )

    def token_limit(self) -> int:
        """Most tokens (prompt + completion) the engine takes: its ``max_model_len``."""
        return self.llm.llm_engine.model_config.max_model_len

    def generate(
        self, prompts: Sequence[Prompt], settings: SamplingSettings, progress: bool = True, desc: str = "generate"
    ) -> list[list[str]]:
        from vllm import SamplingParams

        params = SamplingParams(
            n=settings.num_samples,
            temperature=settings.temperature,
            top_p=1.0 if settings.greedy else settings.top_p,
            max_tokens=settings.max_new_tokens,
            seed=None if settings.greedy else settings.seed,
            skip_special_tokens=True,
            logit_bias=dict.fromkeys(sorted(set(settings.banned_token_ids)), -100.0) or None,
        )
        token_prompts = [{"prompt_token_ids": ids} for ids in tokenize_prompts(self.tokenizer, prompts)]
        outputs = self.llm.generate(token_prompts, sampling_params=params, use_tqdm=progress)
        return [[choice.text for choice in output.outputs] for output in outputs]
