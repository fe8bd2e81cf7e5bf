"""Two ranks with different numbers of prompts generate through AZRTrainer's HF path in chunks of 2.

Run as ``torchrun --nproc_per_node 2 chunked_generation.py OUT_DIR``: rank 0 samples 5 prompts, rank 1 samples 2
and asks for 3 rows of padding (as the Monte-Carlo phase does on a rank with fewer tasks). Each rank writes
``rank{R}.json`` with the batch size and new-token budget of every ``generate`` call it made and the rows it got back.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from azr_trl import AZRTrainer  # noqa: E402

from scripts.tiny_azr_run import length_reward, tiny_config  # noqa: E402
from tiny import make_tiny_model, make_tiny_tokenizer  # noqa: E402


def main() -> None:
    output_dir = sys.argv[1]
    rank = int(os.environ["RANK"])
    tokenizer = make_tiny_tokenizer()
    config = tiny_config(output_dir, generation_chunk_size=2)
    trainer = AZRTrainer(
        make_tiny_model(tokenizer), args=config, processing_class=tokenizer, reward_funcs=[length_reward]
    )
    model = trainer.accelerator.unwrap_model(trainer.model)
    original, calls = model.generate, []

    def counting_generate(*args, **kwargs):
        calls.append([kwargs["input_ids"].shape[0], kwargs["generation_config"].max_new_tokens])
        return original(*args, **kwargs)

    model.generate = counting_generate
    prompts = [f"rank {rank} prompt {i}" for i in range(5 if rank == 0 else 2)]
    _, completions, _, _ = trainer._sample(prompts, padding=0 if rank == 0 else 3)
    Path(output_dir, f"rank{rank}.json").write_text(json.dumps({"calls": calls, "rows": len(completions)}))
    trainer.close()


if __name__ == "__main__":
    main()
