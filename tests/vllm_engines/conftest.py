"""Integration tests against real vLLM engines (the CPU build `vllm-cpu`), run by `make test-vllm` in `.venv-vllm`.

Without vLLM installed (the main venv, `make test`) this folder collects nothing. The engine's settings are exported
before vLLM is imported: 1 GiB of KV cache, CPU platform, no Hub.
"""

from __future__ import annotations

import importlib.util
import os


os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

if importlib.util.find_spec("vllm") is None:
    collect_ignore_glob = ["test_*.py"]
