"""What `AZRTrainer` adds to TRL's checkpoints: the task buffer saved beside the weights and restored on resume, a
checkpoint of the last completed step before a run stops for good, and the resume hint a stopping process prints.

A mixin of the trainer: it reads the trainer's own state (``buffer``, ``_seeding_pending``, ``state``, ``args``).
"""

from __future__ import annotations

import json
import os

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from ..generation.vllm_server import VLLMServerUnavailableError
from ..seeding.phase import seeding_resume_hint


BUFFER_FILE = "azr_buffer.json"


class CheckpointMixin:
    """Checkpoints with the task buffer, for a `transformers.Trainer` subclass that holds ``buffer`` (a `TaskBuffer`)
    and ``_seeding_pending``."""

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = os.path.join(
                self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            )
            self.buffer.save(os.path.join(folder, BUFFER_FILE))

    def _checkpoint_before_stop(self, error: Exception) -> VLLMServerUnavailableError:
        """Save a checkpoint of the last completed step before a run stops for good; the error to raise says where.

        During the seeding phase no step has completed and the buffer holds none of the seeds yet: no checkpoint is
        written (its buffer would hide the seeds), and the restart seeds on from the seed files instead.
        """
        if self._seeding_pending:
            return VLLMServerUnavailableError(f"{error} {seeding_resume_hint(self.args)}")
        if self.accelerator.num_processes > 1:
            # The other processes wait for the main one inside the generation call: a collective save cannot run.
            return VLLMServerUnavailableError(f"{error} Resume from the last checkpoint written every save_steps.")
        self._save_checkpoint(self.model_wrapped, trial=None)
        folder = os.path.join(self._get_output_dir(trial=None), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        return VLLMServerUnavailableError(
            f"{error} Saved a checkpoint of the last completed step (step {self.state.global_step}) to {folder}; "
            f"resume with --resume_from_checkpoint {folder}."
        )

    def _resume_hint(self) -> str:
        """Where the run stands and what a restart in the same ``output_dir`` resumes from (for a process that ends
        without saving)."""
        if self._seeding_pending:
            return seeding_resume_hint(self.args)
        output_dir = self.args.output_dir
        checkpoint = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
        if checkpoint is None:
            return f"The run was at step {self.state.global_step} and has no checkpoint yet: a restart starts over."
        return (
            f"The run was at step {self.state.global_step}; its last checkpoint is {checkpoint}, which a restart in "
            "the same output_dir resumes from."
        )

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None:
            self.load_buffer(checkpoint)

    def load_buffer(self, checkpoint: str) -> None:
        """Restore the task buffer saved in ``checkpoint`` (a run directory's ``checkpoint-N`` folder)."""
        path = os.path.join(checkpoint, BUFFER_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} is missing: {checkpoint} was not written by AZRTrainer, so its task buffer cannot be restored."
            )
        with open(path) as f:
            self.buffer.load_state_dict(json.load(f))
        self._seeding_pending = False  # the checkpoint's buffer already holds the seeds
