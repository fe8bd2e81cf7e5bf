"""Tiny models built in code, for unit tests that need a real tokenizer and a trainable model but no Hub.

The tokenizer is character-level (one token per printable ASCII character) with ChatML special tokens, so chat
prompts render exactly like the default model's; the model is a 2-layer Qwen2 with ~22k parameters that trains a
GRPO step on CPU in about a second.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM


PAD = "<pad>"
UNK = "<unk>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (PAD, UNK, IM_START, IM_END)

# ChatML, as in SmolLM2/Qwen, minus the default system prompt: keeps tiny prompts short.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def make_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A char-level tokenizer over `string.printable` plus ``<pad>``, ``<unk>``, ``<|im_start|>``, ``<|im_end|>``.

    Left padding (what decoder-only generation needs), eos ``<|im_end|>``, pad ``<pad>``, ChatML chat template.
    """
    vocab: dict[str, int] = {}
    for token in (*SPECIAL_TOKENS, *string.printable):
        vocab.setdefault(token, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # Every character is its own pre-token ([\s\S] so that newlines count too); special tokens are matched first.
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    # Fuse joins decoded characters without the spaces WordLevel would put between words.
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        unk_token=UNK,
        eos_token=IM_END,
        bos_token=None,
        additional_special_tokens=[IM_START],
        padding_side="left",
        model_max_length=4096,
    )
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    return tokenizer


def make_tiny_model(
    tokenizer: PreTrainedTokenizerFast, seed: int = 0, max_position_embeddings: int = 4096
) -> Qwen2ForCausalLM:
    """A freshly initialized 2-layer Qwen2 (hidden 32, 4 heads, 2 KV heads, tied embeddings) for ``tokenizer``."""
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    # Seed only the initialization, restoring the global RNG so tests that sample afterwards are unaffected.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None
    )
    return model


def save_tiny_model(folder: str | os.PathLike, seed: int = 0) -> Path:
    """Write the tiny tokenizer and a tiny model for it to ``folder`` (what ``--model_name_or_path`` loads)."""
    tokenizer = make_tiny_tokenizer()
    make_tiny_model(tokenizer, seed=seed).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)
