"""Configuration of the Absolute Zero trainer: every AZR knob on top of TRL's `GRPOConfig`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig

from .executor.types import REFERENCE_BANNED_MODULES
from .tasks.task import TASK_TYPES


_CHOICES: dict[str, tuple[str, ...]] = {
    "prompt_format": ("auto", "chat", "r1"),
    "baseline": ("task_role", "role", "global"),
    "advantage_weighting": ("sample", "token"),
    "executor": ("local", "sandbox_fusion"),
    "solver_sampling": ("max_new", "uniform"),
    "reference_sampling": ("uniform", "recency"),
    "intrinsic_combine": ("sum", "multiply", "sum_multiply", "multiply_sum"),
}


@dataclass
class AZRConfig(GRPOConfig):
    r"""
    Configuration class for [`AZRTrainer`]: Absolute Zero self-play (arXiv 2505.03335) on top of [`~trl.GRPOConfig`].

    One AZR step proposes tasks for every task type, validates them in the sandboxed executor, scores their
    learnability with Monte-Carlo solver rollouts, adds the valid ones to the task buffer, solves tasks sampled from the
    buffer, and takes one optimizer step on all propose and solve sequences with Task-Relative REINFORCE++ advantages.

    Batch arithmetic: every rank generates `len(task_types) * (propose_per_type + solve_per_type)` trained rows per
    step. `per_device_train_batch_size` is the micro-batch; `gradient_accumulation_steps` (and
    `steps_per_generation`) are derived so that one optimizer step consumes the whole step. `num_generations` is set
    automatically because AZR samples one completion per prompt; the Monte-Carlo rollouts are `mc_rollouts`.

    Defaults follow the paper; the reference code's variants are one field away (`trivial_task_reward=-0.5`,
    `advantage_weighting="token"`, `reject_multiple_functions=True`).
    """

    _VALID_DICT_FIELDS = GRPOConfig._VALID_DICT_FIELDS + ["intrinsic_rewards", "executor_kwargs"]

    # Paper: constant learning rate, no warm-up.
    lr_scheduler_type: str = field(
        default="constant",
        metadata={"help": "Learning-rate schedule. AZR trains with a constant learning rate (paper)."},
    )

    # ----- self-play layout -----
    task_types: list[str] = field(
        default_factory=lambda: list(TASK_TYPES),
        metadata={"help": "Task types to play: any of deduction, abduction, induction."},
    )
    propose_per_type: int = field(
        default=4,
        metadata={"help": "Propose rollouts per task type per step, per device (paper: 64 in total)."},
    )
    solve_per_type: int = field(
        default=4,
        metadata={"help": "Solve rollouts per task type per step, per device (paper: 64 in total)."},
    )
    mc_rollouts: int = field(
        default=8,
        metadata={
            "help": "Monte-Carlo solver rollouts per valid proposal, used only to score its learnability (paper: 8). "
            "They are sampled, never greedy, and never trained on."
        },
    )
    mc_temperature: float | None = field(
        default=None,
        metadata={"help": "Sampling temperature of the Monte-Carlo rollouts; None uses `temperature`."},
    )
    num_references: int = field(
        default=6,
        metadata={"help": "K: reference tasks from the buffer shown in each deduction/abduction propose prompt."},
    )
    induction_num_inputs: int = field(
        default=10,
        metadata={"help": "Inputs an induction proposal must give; the first half is shown to the solver."},
    )

    # ----- generation -----
    generation_chunk_size: int = field(
        default=32,
        metadata={
            "help": "Sequences per transformers `generate` call (HF generation only: vLLM batches by itself). It "
            "bounds the KV cache of one call; the Monte-Carlo rollouts (valid proposals x mc_rollouts) are the "
            "largest batch. Every rank makes the same number of calls."
        },
    )
    banned_token_ids: list[int] = field(
        default_factory=list,
        metadata={
            "help": "Token ids generation never samples (HF: `suppress_tokens`; vLLM: `logit_bias` -100, the "
            "strongest bias vLLM accepts). The training script adds the <think>/</think> ids when "
            "remove_qwen3_think_tokens is set."
        },
    )

    # ----- prompts and parsing -----
    prompt_format: str = field(
        default="auto",
        metadata={
            "help": "`chat`: the task as a user message through the tokenizer's chat template (instruct models); "
            "`r1`: the plain R1 think/answer template (base models); `auto`: chat when the tokenizer has a chat "
            "template."
        },
    )
    require_think: bool | None = field(
        default=None,
        metadata={"help": "Whether a completion needs a <think> block to be well formatted; None: r1 yes, chat no."},
    )
    reject_multiple_functions: bool = field(
        default=False,
        metadata={
            "help": "Reject proposals with more than one function definition (the reference's Qwen2.5 setting)."
        },
    )

    # ----- rewards -----
    solver_correct_reward: float = field(default=1.0, metadata={"help": "Solver reward for a correct answer."})
    solver_wrong_reward: float = field(
        default=-0.5, metadata={"help": "Solver reward for a well formatted but wrong answer."}
    )
    format_error_reward: float = field(
        default=-1.0, metadata={"help": "Reward for a completion with a format error (either role)."}
    )
    invalid_proposal_reward: float = field(
        default=-1.0, metadata={"help": "Proposer reward for a well formatted proposal that fails validation."}
    )
    trivial_task_reward: float = field(
        default=0.0,
        metadata={
            "help": "Proposer reward for a valid task whose Monte-Carlo solve rate is 0 or 1. Paper: 0; reference "
            "code: -0.5."
        },
    )
    intrinsic_rewards: dict | str | None = field(
        default=None,
        metadata={
            "help": "Intrinsic proposer rewards, off by default, e.g. "
            '`{"complexity": {"coef": 0.1, "max": 0.5}, "mean_edit_distance": {"coef": 0.1, "max": 0.5}}`. '
            "Names: complexity, mean_edit_distance, halstead, answer_diversity, input_diversity, output_diversity."
        },
    )
    intrinsic_combine: str = field(
        default="sum",
        metadata={
            "help": "How intrinsic rewards combine with learnability r: `sum` (r + sum), `multiply` (r * product), "
            "`sum_multiply` (r + product) or `multiply_sum` (r * sum)."
        },
    )

    # ----- Task-Relative REINFORCE++ -----
    baseline: str = field(
        default="task_role",
        metadata={
            "help": "Advantage baseline groups: `task_role` (TRR++, one per task type and role), `role`, or `global`."
        },
    )
    advantage_weighting: str = field(
        default="sample",
        metadata={
            "help": "Statistics of each baseline group weighted per `sample` (paper) or per `token` (reference code)."
        },
    )
    scale_advantages: bool = field(
        default=True, metadata={"help": "Divide advantages by the group's standard deviation."}
    )

    # ----- executor -----
    executor: str = field(
        default="local",
        metadata={"help": "Where programs run: `local` (forked sandbox pool) or `sandbox_fusion` (a remote server)."},
    )
    executor_timeout: float = field(default=10.0, metadata={"help": "Wall-clock seconds per program."})
    executor_workers: int | None = field(
        default=None, metadata={"help": "Programs in flight at once; None: the CPU count."}
    )
    executor_memory_mb: int = field(default=1024, metadata={"help": "Address-space limit per program, in MiB."})
    executor_kwargs: dict | str | None = field(
        default=None,
        metadata={"help": 'Extra executor options, e.g. `{"endpoint": "http://127.0.0.1:8080"}` for sandbox_fusion.'},
    )
    banned_modules: list[str] = field(
        default_factory=lambda: list(REFERENCE_BANNED_MODULES),
        metadata={"help": "Modules a proposed program may not use (dotted names match submodules and attributes)."},
    )

    # ----- task buffer -----
    seed_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "JSONL seed files (the schema of `azr-trl validate`); every row is re-validated on load. Empty: "
            "seed with the zero triplet."
        },
    )
    buffer_max_size: int = field(
        default=16384, metadata={"help": "Tasks kept per task type; the oldest unpinned task is evicted first."}
    )
    solver_sampling: str = field(
        default="max_new",
        metadata={"help": "Solver tasks: `max_new` prefers last step's tasks then fills uniformly; or `uniform`."},
    )
    reference_sampling: str = field(
        default="uniform",
        metadata={"help": "Reference tasks for propose prompts: `uniform` or weighted by `recency`."},
    )

    # ----- evaluation during training -----
    eval_benchmarks: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Code-reasoning benchmarks evaluated every `eval_steps` steps during training (e.g. cruxeval_o "
            "cruxeval_i); empty: off. Logged as eval/<benchmark>/accuracy."
        },
    )
    eval_benchmark_file: str | None = field(
        default=None,
        metadata={"help": "Local JSONL in the CRUXEval format to evaluate instead of the Hub dataset."},
    )
    eval_num_items: int = field(default=64, metadata={"help": "Items of each benchmark evaluated (a fixed subset)."})
    eval_max_new_tokens: int | None = field(
        default=None, metadata={"help": "Generation budget per evaluation answer; None: max_completion_length."}
    )

    # ----- vLLM server (vllm_mode="server") -----
    vllm_server_retry_seconds: float = field(
        default=900.0,
        metadata={
            "help": "How long the trainer waits for a vLLM server that stops answering (connection errors, HTTP 5xx) "
            "before it stops with a checkpoint; the waits back off up to `vllm_server_retry_max_interval` and are "
            "logged. After a reconnection the current weights are pushed again before generating (a restarted "
            "server holds the base weights). With several processes keep `ddp_timeout` above this. 0: stop at the "
            "first failure."
        },
    )
    vllm_server_retry_max_interval: float = field(
        default=30.0,
        metadata={"help": "Longest wait, in seconds, between two attempts to reach the vLLM server."},
    )

    def __post_init__(self):
        self._check_azr_fields()
        self.intrinsic_rewards = _parse_dict(self.intrinsic_rewards, "intrinsic_rewards")
        self.executor_kwargs = _parse_dict(self.executor_kwargs, "executor_kwargs")

        rows = self.rows_per_device
        if rows % self.per_device_train_batch_size != 0:
            divisors = [d for d in range(1, rows + 1) if rows % d == 0]
            raise ValueError(
                f"Each device trains len(task_types) * (propose_per_type + solve_per_type) = {rows} rows per step, "
                f"which per_device_train_batch_size={self.per_device_train_batch_size} does not divide. Use one of "
                f"{divisors} for per_device_train_batch_size, or change propose_per_type/solve_per_type."
            )
        micro_batches = rows // self.per_device_train_batch_size
        if self.generation_batch_size is not None:
            raise ValueError(
                "generation_batch_size is derived by AZRConfig from task_types, propose_per_type and solve_per_type; "
                "leave it unset."
            )
        if self.steps_per_generation not in (None, micro_batches):
            raise ValueError(
                f"steps_per_generation must be {micro_batches} (= {rows} rows per device / per_device_train_batch_size "
                f"{self.per_device_train_batch_size}); leave it unset and AZRConfig derives it."
            )
        self.steps_per_generation = micro_batches
        if self.gradient_accumulation_steps == 1:
            # Paper: one optimizer step on all propose and solve sequences of a step.
            self.gradient_accumulation_steps = micro_batches
        elif micro_batches % self.gradient_accumulation_steps != 0:
            raise ValueError(
                f"gradient_accumulation_steps={self.gradient_accumulation_steps} must divide the {micro_batches} "
                f"micro-batches of a step; leave it at 1 for one optimizer step per AZR step (paper)."
            )
        # AZR samples one completion per prompt; GRPO's per-prompt groups are unused. Treating each rank's whole
        # step as one "group" satisfies GRPO's divisibility checks for any world size.
        self.num_generations = max(rows, 2)
        super().__post_init__()
        if self.max_steps is None or self.max_steps <= 0:
            raise ValueError("AZR has no dataset to count epochs over: set max_steps (paper: about 500).")
        if self.eval_benchmarks and not self.eval_steps:
            raise ValueError(
                "eval_benchmarks is set but eval_steps is not: set eval_steps (e.g. 10, as in the paper)."
            )
        if self.eval_strategy != "no":
            raise ValueError(
                f"eval_strategy={self.eval_strategy!r}: AZR has no evaluation dataset. Keep eval_strategy='no' and "
                "evaluate during training with azr_trl.evaluation's callback (or after it with `azr-trl eval`)."
            )

    @property
    def rows_per_device(self) -> int:
        """Trained rows (propose + solve) each device generates per step."""
        return len(self.task_types) * (self.propose_per_type + self.solve_per_type)

    def _check_azr_fields(self) -> None:
        unknown = [t for t in self.task_types if t not in TASK_TYPES]
        if unknown or not self.task_types:
            raise ValueError(f"task_types={self.task_types!r}: choose a non-empty subset of {list(TASK_TYPES)}.")
        if len(set(self.task_types)) != len(self.task_types):
            raise ValueError(f"task_types={self.task_types!r} lists a task type twice.")
        if "induction" in self.task_types and not {"deduction", "abduction"} & set(self.task_types):
            # Induction proposals are built from programs of the deduction/abduction buffers.
            raise ValueError(
                "task_types=['induction'] needs deduction or abduction too: induction prompts take their program from "
                "those buffers. Use task_types=['deduction', 'abduction', 'induction']."
            )
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name}={getattr(self, name)!r} is not one of {list(choices)}.")
        for name in ("propose_per_type", "solve_per_type", "num_references"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.mc_rollouts < 2:
            raise ValueError(
                f"mc_rollouts={self.mc_rollouts}: learnability 1 - r needs at least 2 Monte-Carlo rollouts, otherwise "
                "every solve rate is 0 or 1 and every valid proposal gets trivial_task_reward. Use mc_rollouts=8 "
                "(paper)."
            )
        if self.induction_num_inputs < 2:
            raise ValueError(
                f"induction_num_inputs={self.induction_num_inputs}: at least 2 are needed (half shown, half hidden)."
            )
        if self.executor_timeout <= 0:
            raise ValueError(f"executor_timeout must be positive, got {self.executor_timeout}.")
        if self.generation_chunk_size < 1:
            raise ValueError(f"generation_chunk_size must be at least 1, got {self.generation_chunk_size}.")
        if self.buffer_max_size < 1:
            raise ValueError(f"buffer_max_size must be at least 1, got {self.buffer_max_size}.")
        if self.vllm_server_retry_seconds < 0 or self.vllm_server_retry_max_interval <= 0:
            raise ValueError(
                f"vllm_server_retry_seconds={self.vllm_server_retry_seconds} must be >= 0 and "
                f"vllm_server_retry_max_interval={self.vllm_server_retry_max_interval} > 0."
            )
        if self.mc_temperature is not None and self.mc_temperature <= 0:
            raise ValueError(
                f"mc_temperature={self.mc_temperature}: Monte-Carlo rollouts must be sampled (temperature > 0); "
                "greedy rollouts make every solve rate 0 or 1."
            )


def _parse_dict(value: Any, name: str) -> dict | None:
    """Dict fields may arrive as JSON strings from the command line."""
    if value is None or isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise ValueError(f"{name} must be a JSON object, got {value!r}: {err}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"{name} must be a JSON object, got {value!r}.")
    return parsed
