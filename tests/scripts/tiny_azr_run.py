"""Train a tiny in-code model with AZRTrainer; used by the multi-process and kill/resume tests.

Run as ``torchrun --nproc_per_node 2 tiny_azr_run.py OUT_DIR [--max-steps N] [--save-steps N] [--resume]
[--seed-tasks N --seed-induction N]``. Each rank writes ``rank{R}.json`` with a checksum of its parameters, its
buffer's state and its global step. With ``--seed-tasks`` training starts with the seeding phase; the tiny model's
proposals are then scripted (:func:`script_proposals`), since a random 22k-parameter model never writes a valid task.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from azr_trl import AZRConfig, AZRTrainer  # noqa: E402
from azr_trl.selfplay.draws import draw_solve_tasks  # noqa: E402

from tiny import make_tiny_model, make_tiny_tokenizer  # noqa: E402


def length_reward(completions, **kwargs):
    """A dense extra reward (varies with the text) so that a random tiny model still gets non-zero advantages."""
    texts = [c if isinstance(c, str) else c[0]["content"] for c in completions]
    return [sum(map(ord, text)) % 11 / 10 for text in texts]


def tiny_config(output_dir: str, **overrides) -> AZRConfig:
    settings = dict(
        output_dir=output_dir,
        max_steps=2,
        per_device_train_batch_size=6,
        propose_per_type=2,
        solve_per_type=2,
        gradient_checkpointing=False,
        mc_rollouts=2,
        num_references=1,
        max_completion_length=12,
        learning_rate=0.1,
        executor_timeout=2.0,
        executor_workers=2,
        use_cpu=True,
        bf16=False,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        seed=0,
    )
    settings.update(overrides)
    return AZRConfig(**settings)


TRIPLET_PROPOSE = "## Task: Write a New Python Program"
INDUCTION_PROPOSE = "## Task: Choose "


def scripted_proposal(prompt: str, k: int, rank: int = 0) -> str | None:
    """A valid proposal for a proposer prompt (the ``k``-th scripted one), None for any other prompt.

    Even proposals are the same on every rank (so ranks propose duplicates of each other); odd ones differ by rank.
    """
    if INDUCTION_PROPOSE in prompt:
        n = int(prompt.split(INDUCTION_PROPOSE, 1)[1].split()[0])
        inputs = "".join(f"```input\n{k + i}\n```\n" for i in range(n))
        return f"<answer>\n{inputs}```message\nArithmetic on one number.\n```\n</answer>"
    if TRIPLET_PROPOSE not in prompt:
        return None
    scale = 2 if k % 2 == 0 else 3 + rank
    program = f"def f(x):\n    return x * {scale} + {k}\n"
    return f"<think>linear</think>\n<answer>\n```python\n{program}```\n```input\n{k}\n```\n</answer>"


def _scripted_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def script_proposals(model, tokenizer, rank: int = 0):
    """Make ``model.generate`` answer proposer prompts with valid proposals; every other prompt gets the real model.

    A stand-in for a model that can write tasks, behind the trainer's real generation path (``_generate_single_turn``
    tokenises, pads, calls ``generate`` and cuts at the first EOS as for any model). Returns the list of scripted
    batch sizes, one per call.
    """
    real_generate = model.generate
    counter = itertools.count()
    calls: list[int] = []

    def generate(input_ids, attention_mask=None, **kwargs):
        prompts = tokenizer.batch_decode(input_ids, skip_special_tokens=True)
        if not all(TRIPLET_PROPOSE in p or INDUCTION_PROPOSE in p for p in prompts):
            return real_generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        calls.append(len(prompts))
        ids = [_scripted_ids(tokenizer, scripted_proposal(prompt, next(counter), rank)) for prompt in prompts]
        width = max(map(len, ids))
        completion = torch.tensor([row + [tokenizer.pad_token_id] * (width - len(row)) for row in ids])
        return torch.cat([input_ids, completion.to(input_ids.device)], dim=1)

    model.generate = generate
    return calls


def script_server_proposals(monkeypatch, tokenizer, after_request=None) -> list[int]:
    """Make the requests to a vLLM server (`VLLMClient.generate`, made by the main process) answer proposer prompts
    with valid proposals: the request runs on the server as it is, then the completions of its proposer prompts are
    replaced. ``after_request(n)`` runs after the ``n``-th scripted request has been answered (1-based). Returns the
    number of proposer prompts of each scripted request."""
    from trl.generation.vllm_client import VLLMClient

    real_generate = VLLMClient.generate
    counter = itertools.count()
    calls: list[int] = []

    def generate(self, prompts, *args, n: int = 1, **kwargs):
        output = real_generate(self, prompts, *args, n=n, **kwargs)
        texts = tokenizer.batch_decode(prompts, skip_special_tokens=True)
        if not any(TRIPLET_PROPOSE in t or INDUCTION_PROPOSE in t for t in texts):
            return output
        calls.append(len(prompts))
        for i, text in enumerate(texts):
            for j in range(i * n, (i + 1) * n):
                proposal = scripted_proposal(text, next(counter))
                if proposal is None:
                    continue
                ids = _scripted_ids(tokenizer, proposal)
                output["completion_ids"][j] = ids
                if output.get("logprobs") is not None:
                    output["logprobs"][j] = [[0.0]] * len(ids)
                    output["logprob_token_ids"][j] = [[token] for token in ids]
        if after_request is not None:
            after_request(len(calls))
        return output

    monkeypatch.setattr(VLLMClient, "generate", generate)
    return calls


def parameter_checksum(model) -> str:
    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(param.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir")
    parser.add_argument("--max-steps", type=int, default=2)
    parser.add_argument("--save-steps", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--seed-tasks", type=int, default=0)
    parser.add_argument("--seed-induction", type=int, default=0)
    cli = parser.parse_args()
    overrides = {"max_steps": cli.max_steps}
    if cli.save_steps:
        overrides.update(save_strategy="steps", save_steps=cli.save_steps)
    if cli.seed_tasks:
        overrides.update(seed_num_tasks=cli.seed_tasks, seed_num_induction=cli.seed_induction, induction_num_inputs=4)
    config = tiny_config(cli.output_dir, **overrides)
    tokenizer = make_tiny_tokenizer()
    rank = int(os.environ.get("RANK", "0"))
    model = make_tiny_model(tokenizer)
    if cli.seed_tasks:
        script_proposals(model, tokenizer, rank)
    trainer = AZRTrainer(model, args=config, processing_class=tokenizer, reward_funcs=[length_reward])
    trainer.train(resume_from_checkpoint=True if cli.resume else None)
    report = {
        "checksum": parameter_checksum(trainer.accelerator.unwrap_model(trainer.model)),
        "buffer": trainer.buffer.state_dict(),
        "fingerprint": trainer.buffer.fingerprint(),
        "global_step": trainer.state.global_step,
        "world_size": trainer.accelerator.num_processes,
        "seeding": [e for e in trainer.state.log_history if any(k.startswith("azr/seeding/") for k in e)],
        # This rank's share of one global draw of solver tasks (the draw of the last step).
        "solve_draw": {t: [task.key() for task in draw_solve_tasks(trainer, t)] for t in config.task_types},
    }
    Path(cli.output_dir, f"rank{rank}.json").write_text(json.dumps(report, sort_keys=True))
    trainer.close()


if __name__ == "__main__":
    main()
