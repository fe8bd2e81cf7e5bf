"""Padding rows: prompts that only keep the ranks' generation calls the same size, answered for (almost) nothing.

TRL's server mode gathers every rank's prompts into one request and hands each rank back an equal slice, so a rank
with fewer prompts than the others (the Monte-Carlo rollouts: valid proposals differ per rank) must send as many.
Sampled in full, its filler would add whole completions to the longest call of a step. A padding row is the prompt
:func:`padding_prompt_ids` (one pad token, never a real prompt), and each engine answers it cheaply:

- vLLM server: the main process takes padding rows out of the request and answers them itself with one EOS token
  (no request at all when every row is padding);
- vLLM colocate: the engine samples them with ``max_tokens=1`` (one ``SamplingParams`` per prompt);
- HF generate: the trainer sends no padding rows; ranks only need the same number of calls, and a rank short of
  chunks makes one-token calls.
"""

from __future__ import annotations

from typing import Any


def padding_prompt_ids(tokenizer) -> list[int]:
    """The prompt of a padding row: one pad token."""
    return [tokenizer.pad_token_id]


def answer_padding_cheaply(vllm_generation, tokenizer) -> None:
    """Wrap the engine a TRL `VLLMGeneration` holds on this process so that padding rows cost at most one token."""
    padding = padding_prompt_ids(tokenizer)
    if vllm_generation.mode == "server":
        client = getattr(vllm_generation, "vllm_client", None)  # the main process's only
        if client is not None:
            _answer_padding_on_client(client, padding, tokenizer.eos_token_id)
    else:
        _sample_padding_one_token(vllm_generation.llm, padding)


def _answer_padding_on_client(client, padding: list[int], eos_token_id: int) -> None:
    """`VLLMClient.generate` without the padding rows; they get one EOS token (log-prob 0) in their places."""
    generate = client.generate

    def generate_without_padding(prompts, *args, n: int = 1, **kwargs) -> dict[str, Any]:
        real = [i for i, prompt in enumerate(prompts) if list(prompt) != padding]
        if len(real) == len(prompts):
            return generate(prompts, *args, n=n, **kwargs)
        answered = generate([prompts[i] for i in real], *args, n=n, **kwargs) if real else None
        out: dict[str, Any] = {"prompt_ids": [], "completion_ids": [], "logprobs": [], "logprob_token_ids": []}
        position = {index: j for j, index in enumerate(real)}
        for i, prompt in enumerate(prompts):
            j = position.get(i)
            out["prompt_ids"].append(answered["prompt_ids"][j] if j is not None else list(prompt))
            for k in range(n):
                if j is None:
                    out["completion_ids"].append([eos_token_id])
                    out["logprobs"].append([[0.0]])
                    out["logprob_token_ids"].append([[eos_token_id]])
                    continue
                for key in ("completion_ids", "logprobs", "logprob_token_ids"):
                    values = answered.get(key)
                    out[key].append(None if values is None else values[j * n + k])
        for key in ("logprobs", "logprob_token_ids"):  # not asked for: None for every row, as the client gives
            if answered is not None and answered.get(key) is None:
                out[key] = None
        return out

    client.generate = generate_without_padding


def _sample_padding_one_token(llm, padding: list[int]) -> None:
    """`LLM.generate` with ``max_tokens=1`` for padding rows (TRL passes one `SamplingParams` for all prompts)."""
    generate = llm.generate

    def generate_padding_short(prompts, sampling_params=None, *args, **kwargs):
        rows = [list(prompt["prompt_token_ids"]) == padding for prompt in prompts]
        if any(rows) and sampling_params is not None and not isinstance(sampling_params, list):
            short = sampling_params.clone()
            short.max_tokens = 1
            sampling_params = [short if row else sampling_params for row in rows]
        return generate(prompts, sampling_params, *args, **kwargs)

    llm.generate = generate_padding_short
