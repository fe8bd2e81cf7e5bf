"""Configuration of the Absolute Zero trainer: every AZR knob on top of TRL's `GRPOConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trl import GRPOConfig

from .azr_config_checks import apply_preset, check_azr_fields, check_grpo_fields, check_task_options
from .azr_config_defaults import DEFAULT_SEED_MAX_ROUNDS, DEFAULT_SEED_PATIENCE, REFERENCE_SEED_MINIMUM
from .azr_config_docs import first_in_section, with_parameters_doc
from .executor.types import REFERENCE_BANNED_MODULES, ExecutorConfig
from .jsonl import parse_json_object
from .tasks.registry import get_task_spec
from .tasks.task import TASK_TYPES


if TYPE_CHECKING:
    from .tasks.base import TaskSpec


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

    Defaults follow the paper. `preset="reference"` switches every known difference to what the reference code does
    (see `azr_config_checks.PRESETS`: trivial-task reward, token-weighted TRR++ statistics, induction input handling and
    checks, the seeding sizes); a field set explicitly keeps its value under either preset.
    `reject_multiple_functions=True` is the reference's Qwen2.5 setting (its Llama and Qwen3 scripts leave it off), so
    it stays a field of its own.

    Seeding (Algorithm 1): with `seed_num_tasks > 0` and no `seed_files`, the trainer first lets the starting model
    propose seed triplets (then `seed_num_induction` induction items), validated by the executor and gathered from
    all ranks, and writes them to `output_dir` (`azr_seed_tasks.jsonl`, `azr_seed_induction.jsonl`); a restart in the
    same `output_dir` continues from those files and a resumed checkpoint never seeds again.
    """

    # Paper: constant learning rate, no warm-up.
    lr_scheduler_type: str = first_in_section(
        "Parameters of `GRPOConfig` whose AZR default differs",
        default="constant",
        metadata={"help": "Learning-rate schedule. AZR trains with a constant learning rate (paper)."},
    )

    # Paper: an entropy bonus of 0.001 (TRL's default is 0.0).
    entropy_coef: float = field(
        default=0.001,
        metadata={"help": "Entropy bonus coefficient (paper and the reference's paper branch: 0.001; its master: 0)."},
    )

    preset: str = first_in_section(
        "Parameters that choose between the paper and the reference code",
        default="paper",
        metadata={
            "help": "`paper` or `reference` (the reference code's behaviour): the values of trivial_task_reward, "
            "advantage_weighting, induction_inputs, reject_duplicate_inputs, reject_message_leaks, seed_num_tasks, "
            "seed_num_induction, require_think, call_wrapped_inputs, value_equality, pasted_inputs, truncate_outputs, "
            "reject_input_calls, entry_rename and keep_badly_formatted_tasks when they are not set."
        },
    )

    task_types: list[str] = first_in_section(
        "Parameters that control the self-play layout",
        default_factory=lambda: list(TASK_TYPES),
        metadata={
            "help": "Task types to play: any of deduction, abduction, induction (the paper's), a task family such as "
            "arithmetic (a constrained program space with its own seeds and held-out set), a task type registered "
            "with azr_trl.tasks.register_task_type or an entry point of the group azr_trl.task_types, or "
            "'package.module:ClassName' naming a TaskSpec subclass."
        },
    )
    task_options: dict | str | None = field(
        default=None,
        metadata={
            "help": 'Constructor options per task type, e.g. `{"arithmetic": {"difficulty": 5, '
            '"num_seed_tasks": 64}}` (a family\'s difficulty knob and seed count).'
        },
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
    induction_inputs: str | None = field(
        default=None,
        metadata={
            "help": "`exact`: an induction proposal must give exactly induction_num_inputs inputs (paper); "
            "`last_n`: at least that many, keeping the last ones (reference). None: from the preset."
        },
    )
    reject_duplicate_inputs: bool | None = field(
        default=None,
        metadata={
            "help": "Reject induction proposals that repeat an input (paper: yes; reference: no). None: preset."
        },
    )
    reject_message_leaks: bool | None = field(
        default=None,
        metadata={
            "help": "Reject induction proposals whose message copies the program (paper: yes; reference: no). None: "
            "preset."
        },
    )

    max_prompt_tokens: int = first_in_section(
        "Parameters that control generation",
        default=6144,
        metadata={
            "help": "Ceiling on a prompt's tokens (reference: 6144), applied like the generation engine's own limit "
            "(the lower of the two holds): a propose prompt drops its longest references until it fits, a task "
            "whose solve prompt is longer is skipped. Prompts are never truncated. Every micro-batch is padded to "
            "its longest row, so the memory plan sizes activations at max_prompt_tokens + max_completion_length."
        },
    )
    generation_chunk_size: int = field(
        default=32,
        metadata={
            "help": "Sequences per transformers `generate` call (HF generation only: vLLM batches by itself), in "
            "training and in the in-training evaluation. It bounds the KV cache of one call; the Monte-Carlo "
            "rollouts (valid proposals x mc_rollouts) are the largest batch. Every rank makes the same number of "
            "calls."
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

    prompt_format: str = first_in_section(
        "Parameters that control prompts and parsing",
        default="auto",
        metadata={
            "help": "`chat`: the task as a user message through the tokenizer's chat template (instruct models); "
            "`r1`: the plain R1 think/answer template (base models); `auto`: chat when the tokenizer has a chat "
            "template."
        },
    )
    require_think: bool | None = field(
        default=None,
        metadata={
            "help": "Whether a completion needs a <think> block to be well formatted; None: r1 yes, chat no (preset "
            "paper), yes (preset reference)."
        },
    )
    answer_extraction: str = field(
        default="reference",
        metadata={
            "help": "Where the parts of a completion are read, for both roles and the Monte-Carlo rollouts: "
            "`reference` (where the reference code reads them: up to the next `Assistant:`, its format regex, its "
            "fence patterns and fallbacks, see the README) or `strict` (fenced blocks only; a missing block is a "
            "format error)."
        },
    )
    call_wrapped_inputs: str | None = field(
        default=None,
        metadata={
            "help": "An input written as a call, `f(x)`, in a proposal or an abduction answer: `unwrap` reads the "
            "input x (paper preset); `nest` keeps the call, which runs as f(f(x)) as in the reference's templates "
            "(reference preset). None: from the preset."
        },
    )
    value_equality: str | None = field(
        default=None,
        metadata={
            "help": "How an answer's value is compared with the gold value (both parsed as literals, never run): "
            "`typed`: a bool never equals a number, so True vs 1 differ (paper preset); `python`: Python's == on "
            "the two values, so True == 1 and [False] == [0] as in the reference's checks (reference preset). "
            "1 == 1.0 under both. None: from the preset."
        },
    )
    pasted_inputs: bool | None = field(
        default=None,
        metadata={
            "help": "Treat inputs as the reference pastes them into one line of program text, f(<input>) (reference "
            "preset): a proposal's input may name arguments or be an expression (`xs=[3, 1]`, `[3] + [1, 2]`: "
            "pasted into its program and run with it in the sandbox, never evaluated in this process), an abduction "
            "answer may name arguments (literal values), an input whose last line ends in a `# comment` is invalid "
            "(the comment hides the closing parenthesis), and since the reference evaluates only the last line of "
            "its grading program, an abduction answer or an induction hidden input that spans lines is never graded "
            "correct. False (paper preset): an input is positional literals, comments and line breaks are layout. "
            "None: from the preset."
        },
    )
    truncate_outputs: int | None = field(
        default=None,
        metadata={
            "help": "Gold outputs (their repr) longer than this many characters are kept as their first and last "
            "halves joined by `...`, as the reference's executor keeps them (400, reference preset): such a task is "
            "then unsolvable unless the cut text is itself a value. 0 keeps outputs whole, up to "
            "executor_max_output_chars (paper preset). None: from the preset."
        },
    )
    reject_input_calls: bool | None = field(
        default=None,
        metadata={
            "help": "Refuse a proposed program or input whose text contains `input(` anywhere (a helper named "
            "`parse_input(` too), and grade an induction answer containing it wrong, as the reference's executor "
            "refuses to run such code (reference preset). False (paper preset): allowed, the sandbox has no stdin. "
            "None: from the preset."
        },
    )
    entry_rename: str | None = field(
        default=None,
        metadata={
            "help": "How a proposed program without a function `f` gets one: `token`: its last top-level function is "
            "renamed as an identifier (paper preset); `text`: the reference's regex rename, the last `def` anywhere "
            "(nested functions and methods included, and no rename if any `def f` exists) renamed at every "
            "`def name(` and `name(` of the text, so `s.count(ch)` becomes `s.f(ch)` when the function is `count` "
            "(reference preset). None: from the preset."
        },
    )
    keep_badly_formatted_tasks: bool | None = field(
        default=None,
        metadata={
            "help": "Add a valid task to the buffer even when its proposal's think/answer tags are wrong, as the "
            "reference's buffer takes every valid program (reference preset); the proposer still gets "
            "format_error_reward and the task gets no Monte-Carlo rollouts. False (paper preset): only tasks of "
            "well-formed proposals. None: from the preset."
        },
    )
    reject_multiple_functions: bool = field(
        default=False,
        metadata={
            "help": "Reject proposals with more than one function definition (the reference's Qwen2.5 setting)."
        },
    )

    solver_correct_reward: float = first_in_section(
        "Parameters that control the rewards",
        default=1.0,
        metadata={"help": "Solver reward for a correct answer."},
    )
    solver_wrong_reward: float = field(
        default=-0.5, metadata={"help": "Solver reward for a well formatted but wrong answer."}
    )
    format_error_reward: float = field(
        default=-1.0, metadata={"help": "Reward for a completion with a format error (either role)."}
    )
    invalid_proposal_reward: float = field(
        default=-1.0, metadata={"help": "Proposer reward for a well formatted proposal that fails validation."}
    )
    trivial_task_reward: float | None = field(
        default=None,
        metadata={
            "help": "Proposer reward for a valid task whose Monte-Carlo solve rate is 0 or 1. Paper: 0; reference "
            "code: -0.5. None: from the preset."
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

    baseline: str = first_in_section(
        "Parameters that control the Task-Relative REINFORCE++ advantages",
        default="task_role",
        metadata={
            "help": "Advantage baseline groups: `task_role` (TRR++, one per task type and role), `role`, or `global`."
        },
    )
    advantage_weighting: str | None = field(
        default=None,
        metadata={
            "help": "Statistics of each baseline group weighted per `sample` (paper) or per `token` (reference code). "
            "None: from the preset."
        },
    )
    scale_advantages: bool = field(
        default=True, metadata={"help": "Divide advantages by the group's standard deviation."}
    )

    # The defaults come from ExecutorConfig, the one home of the executor's settings (`executor_config()` builds one).
    executor: str = first_in_section(
        "Parameters that control the executor",
        default=ExecutorConfig.backend,
        metadata={"help": "Where programs run: `local` (forked sandbox pool) or `sandbox_fusion` (a remote server)."},
    )
    executor_timeout: float = field(
        default=ExecutorConfig.timeout, metadata={"help": "Wall-clock seconds per program."}
    )
    executor_workers: int | None = field(
        default=ExecutorConfig.workers, metadata={"help": "Programs in flight at once; None: the CPU count."}
    )
    executor_memory_mb: int = field(
        default=ExecutorConfig.memory_mb, metadata={"help": "Address-space limit per program, in MiB."}
    )
    executor_kwargs: dict | str | None = field(
        default=None,
        metadata={"help": 'Extra executor options, e.g. `{"endpoint": "http://127.0.0.1:8080"}` for sandbox_fusion.'},
    )
    banned_modules: list[str] = field(
        default_factory=lambda: list(REFERENCE_BANNED_MODULES),
        metadata={"help": "Modules a proposed program may not use (dotted names match submodules and attributes)."},
    )

    seed_files: list[str] = first_in_section(
        "Parameters that control the task buffer and its seeding",
        default_factory=list,
        metadata={
            "help": "JSONL seed files (the schema of `azr-trl validate`); every row is re-validated on load. Empty: "
            "seed with the zero triplet."
        },
    )
    seed_num_tasks: int | None = field(
        default=None,
        metadata={
            "help": "Seeding phase (Algorithm 1): seed triplets the starting model proposes before step 1, in total over "
            "all ranks, when no seed_files are given (reference: 256; 0: start from the zero triplet). None: preset."
        },
    )
    seed_num_induction: int | None = field(
        default=None,
        metadata={"help": "Induction items proposed after the seed triplets (reference: 256). None: from the preset."},
    )
    seed_min_tasks: int | None = field(
        default=None,
        metadata={
            "help": "Training does not start with fewer seed triplets (or induction items) than this. None: "
            f"min({REFERENCE_SEED_MINIMUM}, target), the reference's minimum."
        },
    )
    seed_max_rounds: int = field(
        default=DEFAULT_SEED_MAX_ROUNDS,
        metadata={
            "help": "Generation rounds the seeding phase may take per seed file (each rank proposes "
            "propose_per_type tasks per round)."
        },
    )
    seed_patience: int = field(
        default=DEFAULT_SEED_PATIENCE,
        metadata={"help": "The seeding phase stops after this many rounds in a row without a new valid task."},
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

    eval_benchmarks: list[str] = first_in_section(
        "Parameters that control evaluation during training",
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

    vllm_server_retry_seconds: float = first_in_section(
        'Parameters that control the vLLM server (only used when `vllm_mode` is `"server"`)',
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
    vllm_weight_push_timeout: float = field(
        default=600.0,
        metadata={
            "help": "Seconds a weight push to the vLLM server (an NCCL broadcast, which has no timeout of its own) "
            "may take. Past it the main process logs what it was pushing and the checkpoint to resume from, and "
            "exits with status 75 so that a cluster scheduler can restart the run. Keep it well above a normal push "
            "(seconds to a minute). 0: no watchdog."
        },
    )

    def __post_init__(self):
        apply_preset(self)
        check_azr_fields(self)
        self.intrinsic_rewards = parse_json_object(self.intrinsic_rewards, "intrinsic_rewards")
        self.executor_kwargs = parse_json_object(self.executor_kwargs, "executor_kwargs")
        self.task_options = parse_json_object(self.task_options, "task_options") or {}
        check_task_options(self)

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
        check_grpo_fields(self)
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

    def executor_config(self) -> ExecutorConfig:
        """The executor settings of this run (backend, limits, banned modules), for `make_executor` and the evaluation."""
        return ExecutorConfig(
            backend=self.executor,
            backend_kwargs=dict(self.executor_kwargs or {}),
            timeout=self.executor_timeout,
            workers=self.executor_workers,
            memory_mb=self.executor_memory_mb,
            banned_modules=tuple(self.banned_modules),
        )

    @property
    def seeds_from_model(self) -> bool:
        """Whether training starts with the seeding phase (seed sizes set, no seed files, and a paper task type trained:
        the phase proposes deduction/abduction triplets; task families bring their own seeds)."""
        return not self.seed_files and self.seed_num_tasks > 0 and any(t in TASK_TYPES for t in self.task_types)

    @property
    def rows_per_device(self) -> int:
        """Trained rows (propose + solve) each device generates per step."""
        return len(self.task_types) * (self.propose_per_type + self.solve_per_type)


def task_spec(args: AZRConfig, task_type: str) -> TaskSpec:
    """The task spec of ``task_type`` with the parsing options of ``args`` and its ``task_options`` (what the trainer and
    its seeding phase build their prompts and parse completions with)."""
    options = dict(args.task_options.get(task_type, {}))
    if task_type == "induction":
        options |= {
            "inputs_rule": args.induction_inputs,
            "reject_duplicate_inputs": args.reject_duplicate_inputs,
            "reject_message_leaks": args.reject_message_leaks,
        }
    return get_task_spec(
        task_type,
        num_inputs=args.induction_num_inputs,
        reject_multiple_functions=args.reject_multiple_functions,
        banned_modules=tuple(args.banned_modules),
        answer_extraction=args.answer_extraction,
        call_wrapped_inputs=args.call_wrapped_inputs,
        value_equality=args.value_equality,
        pasted_inputs=args.pasted_inputs,
        truncate_outputs=args.truncate_outputs,
        reject_input_calls=args.reject_input_calls,
        entry_rename=args.entry_rename,
        keep_badly_formatted_tasks=args.keep_badly_formatted_tasks,
        **options,
    )


# The docstring's `Parameters:` block, as in TRL's configs, rendered from each field's help text (one source for both).
AZRConfig.__doc__ = with_parameters_doc(AZRConfig)
