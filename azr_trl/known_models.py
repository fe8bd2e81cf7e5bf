"""The shapes of the shipped recipes' models, so that the memory plan needs no Hub.

Each entry holds the fields of the model's published ``config.json`` that decide its memory: vocabulary, widths,
depth, attention heads, positions and whether the embeddings are tied. The plan builds the model from them on the
``meta`` device, as it would from the downloaded file. Any other model's config comes from a local folder or the Hub.
"""

from __future__ import annotations

from typing import Any


_QWEN25_3B = {
    "model_type": "qwen2",
    "vocab_size": 151936,
    "hidden_size": 2048,
    "intermediate_size": 11008,
    "num_hidden_layers": 36,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": True,
}
_QWEN25_7B = {
    "model_type": "qwen2",
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": False,
}
_QWEN25_14B = {
    "model_type": "qwen2",
    "vocab_size": 152064,
    "hidden_size": 5120,
    "intermediate_size": 13824,
    "num_hidden_layers": 48,
    "num_attention_heads": 40,
    "num_key_value_heads": 8,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": False,
}

_QWEN25_05B = {
    "model_type": "qwen2",
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": True,
}
_QWEN25_15B = {
    "model_type": "qwen2",
    "vocab_size": 151936,
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": True,
}

# Hub id -> the memory-relevant fields of its config.json (revision `main`). The Coder models share the shapes of
# the Qwen2.5 models of their size. The named offline models (azr_trl.offline_models) are here under their Hub ids.
KNOWN_MODEL_CONFIGS: dict[str, dict[str, Any]] = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": {
        "model_type": "llama",
        "vocab_size": 49152,
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": True,
    },
    "Qwen/Qwen2.5-Coder-0.5B-Instruct": _QWEN25_05B,
    "Qwen/Qwen2.5-Coder-1.5B-Instruct": _QWEN25_15B,
    "Qwen/Qwen2.5-Coder-3B": _QWEN25_3B,
    "Qwen/Qwen2.5-Coder-7B": _QWEN25_7B,
    "Qwen/Qwen2.5-7B": _QWEN25_7B,
    "Qwen/Qwen2.5-Coder-14B": _QWEN25_14B,
    "Qwen/Qwen2.5-14B": _QWEN25_14B,
    "meta-llama/Llama-3.1-8B": {
        "model_type": "llama",
        "vocab_size": 128256,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": False,
    },
    "Qwen/Qwen3-4B-Base": {
        "model_type": "qwen3",
        "vocab_size": 151936,
        "hidden_size": 2560,
        "intermediate_size": 9728,
        "num_hidden_layers": 36,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "max_position_embeddings": 32768,
        "tie_word_embeddings": True,
    },
}


def known_model_config(name: str, revision: str | None = None):
    """The transformers config of a recipe model from :data:`KNOWN_MODEL_CONFIGS`; None for any other model or a
    revision other than ``main``."""
    fields = KNOWN_MODEL_CONFIGS.get(name)
    if fields is None or revision not in (None, "main"):
        return None
    from transformers import AutoConfig

    fields = dict(fields)
    return AutoConfig.for_model(fields.pop("model_type"), **fields)
