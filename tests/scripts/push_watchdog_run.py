"""A server-mode AZR run on the tiny model whose vLLM server dies in the middle of the step-2 weight push.

Run as ``python push_watchdog_run.py OUT_DIR TIMEOUT``. The server is the HTTP stand-in of tests/vllm_stand_in.py;
TRL's own `update_named_params` pushes the weights, with its NCCL broadcast replaced by the stand-in that, like NCCL,
waits for ever for a receiver that never comes. Step 1 trains and saves checkpoint-1; at step 2 the server answers
`/start_weight_update` and goes away. The push watchdog must end the process with its exit status; if training
returns instead, the script exits 0, which the test counts as a failure.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tiny_azr_run import length_reward, tiny_config  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from azr_trl import AZRTrainer  # noqa: E402

from tiny import make_tiny_model, make_tiny_tokenizer  # noqa: E402
from vllm_stand_in import VLLMServerStandIn, use_stand_ins_for_nccl  # noqa: E402


class DieDuringTheNextPush(TrainerCallback):
    def __init__(self, server: VLLMServerStandIn):
        self.server = server

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 1:
            self.server.die_after = "/start_weight_update"


def main() -> None:
    output_dir, timeout = sys.argv[1], float(sys.argv[2])
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    server = VLLMServerStandIn(max_model_len=8192).start()
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_stand_ins_for_nccl(monkeypatch, server)
        config = tiny_config(
            output_dir,
            max_steps=3,
            save_strategy="steps",
            save_steps=1,
            use_vllm=True,
            vllm_mode="server",
            vllm_server_base_url=server.base_url,
            vllm_weight_push_timeout=timeout,
        )
        tokenizer = make_tiny_tokenizer()
        trainer = AZRTrainer(
            make_tiny_model(tokenizer), args=config, processing_class=tokenizer, reward_funcs=[length_reward]
        )
        trainer.add_callback(DieDuringTheNextPush(server))
        trainer.train()


if __name__ == "__main__":
    main()
