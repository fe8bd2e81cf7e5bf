"""``azr-trl seed``: grow seed files with tasks proposed by a model, validated by the executor (no training)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from azr_trl.azr_config_defaults import DEFAULT_SEED_MAX_ROUNDS, DEFAULT_SEED_PATIENCE
from azr_trl.cli.executor_args import add_executor_arguments, executor_config_from_args
from azr_trl.generation.generators import SamplingSettings
from azr_trl.seeding.generation import SEED_TASKS_FILE
from azr_trl.tasks.prompts import PROMPT_FORMAT_CHOICES


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``seed`` subcommand."""
    parser = subparsers.add_parser(
        "seed",
        help="propose seed tasks with a model and keep the valid, distinct ones (JSONL)",
        description=(
            "Have a model propose deduction/abduction tasks, starting from the zero triplet (the references grow as "
            "valid tasks arrive), validate them in the sandboxed executor, and append the valid, distinct ones to "
            "--output until it holds --num-tasks rows. An existing output is re-validated and continued, so an "
            "interrupted run resumes. With --induction-output, induction items (N inputs + a message for one "
            "collected program) follow. The files are valid `seed_files` for training. A file that does not reach its "
            "size within --max-rounds rounds, or after --patience rounds in a row without a new task, ends the run "
            "with exit status 1 and the verdicts of the proposals."
        ),
    )
    parser.add_argument(
        "--model", required=True, help="model: 'default' (embedded SmolLM2-135M-Instruct), Hub id or path"
    )
    parser.add_argument(
        "--output",
        default=SEED_TASKS_FILE,
        help=f"JSONL file of triplets (program, input, output); appended to (default ./{SEED_TASKS_FILE})",
    )
    parser.add_argument("--num-tasks", type=int, required=True, help="rows the output should hold at the end")
    parser.add_argument("--induction-output", default=None, help="also collect induction items into this JSONL file")
    parser.add_argument("--num-induction", type=int, default=None, help="rows for --induction-output (default: N)")
    parser.add_argument("--batch-size", type=int, default=4, help="proposals generated per round (default 4)")
    parser.add_argument("--backend", choices=("hf", "vllm"), default="hf", help="generation backend (default hf)")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=SamplingSettings.max_new_tokens,
        help="generation budget per proposal",
    )
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (default 1.0: off)")
    parser.add_argument("--num-references", type=int, default=6, help="K reference tasks per prompt (default 6)")
    parser.add_argument("--num-inputs", type=int, default=10, help="inputs per induction item (default 10)")
    parser.add_argument(
        "--max-rounds",
        type=int,
        default=DEFAULT_SEED_MAX_ROUNDS,
        help=f"stop after this many rounds per file (default {DEFAULT_SEED_MAX_ROUNDS})",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=DEFAULT_SEED_PATIENCE,
        help=f"stop after this many rounds in a row without a new valid task (default {DEFAULT_SEED_PATIENCE})",
    )
    parser.add_argument(
        "--prompt-format",
        choices=PROMPT_FORMAT_CHOICES,
        default=None,
        help="default: the format the model was trained with (azr_prompt_format.json), else auto: chat if the model "
        "has a template",
    )
    parser.add_argument(
        "--require-think",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a proposal needs a <think> block (default: yes for r1, no for chat)",
    )
    add_executor_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def _generator(path: str, args: argparse.Namespace) -> tuple[Any, Any]:
    """The shared generator of ``--backend`` (see ``evaluation.generation``) and the model's tokenizer.

    Sampling draws from one random stream seeded once with ``--seed`` (rounds repeat their prompts, and must not
    repeat their samples); all proposals of a round go to the model in one batch.
    """
    from azr_trl.generation.generators import HFGenerator, VLLMGenerator, load_hf_model

    if args.backend == "vllm":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        return VLLMGenerator(path, tokenizer, seed=args.seed), tokenizer
    import torch

    model, tokenizer = load_hf_model(path)
    torch.manual_seed(args.seed)
    return HFGenerator(model, tokenizer, batch_size=args.batch_size), tokenizer


def run(args: argparse.Namespace) -> int:
    """Load the model, then collect seed tasks; exit 1 with a one-line reason if the model or a file is unusable."""
    from azr_trl.executor import ExecutorError, make_executor
    from azr_trl.generation.generators import prompt_length
    from azr_trl.offline_models import resolve_model_path
    from azr_trl.run_outputs.prompt_format import trained_defaults
    from azr_trl.seeding.generation import check_seed_prompt_budget, generate_seed_tasks, seed_specs
    from azr_trl.tasks.prompt_budget import PromptBudget
    from azr_trl.tasks.prompts import resolve_prompt_format

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for name in ("num_tasks", "batch_size", "num_references", "max_new_tokens", "max_rounds", "patience"):
        if getattr(args, name) < 1:
            print(f"error: --{name.replace('_', '-')} must be at least 1", file=sys.stderr)
            return 1
    try:
        config = executor_config_from_args(args)
        sampling = SamplingSettings(
            max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, seed=None
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        path = resolve_model_path(args.model)
        generator, tokenizer = _generator(path, args)
    except (OSError, ValueError, ImportError) as err:
        if isinstance(err, ImportError) and args.backend == "vllm":  # the message says what to install
            print(f"error: {err}", file=sys.stderr)
        else:
            print(f"error: cannot load model {args.model!r}: {err}", file=sys.stderr)
        return 1

    def generate(prompts: list[Any]) -> list[str]:
        return [samples[0] for samples in generator.generate(prompts, sampling, progress=False)]

    limit = generator.token_limit()
    budget = None
    if limit is not None:
        budget = PromptBudget(limit - args.max_new_tokens, lambda prompt: prompt_length(tokenizer, prompt))
    prompt_format, require_think = trained_defaults(args.model, args.prompt_format, args.require_think)
    fmt, require_think = resolve_prompt_format(prompt_format, require_think, tokenizer)
    specs = seed_specs(args.num_inputs)
    try:
        if budget is not None:
            check_seed_prompt_budget(budget, specs, fmt, induction=args.induction_output is not None)
        with make_executor(config) as executor:
            report = generate_seed_tasks(
                generate,
                executor,
                args.output,
                args.num_tasks,
                induction_output=args.induction_output,
                num_induction=args.num_induction,
                batch_size=args.batch_size,
                num_references=args.num_references,
                num_inputs=args.num_inputs,
                max_rounds=args.max_rounds,
                patience=args.patience,
                fmt=fmt,
                require_think=require_think,
                seed=args.seed,
                progress=not args.no_progress,
                specs=specs,
                prompt_budget=budget,
            )
    except (OSError, ValueError, ImportError, ExecutorError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for phase in report.phases:
        print(
            f"{phase.path}: {phase.count} {phase.name} (+{phase.added}) in {phase.rounds} rounds, {phase.proposals} "
            f"proposals ({phase.histogram(6)})",
            file=sys.stderr,
        )
    for phase in report.phases:
        problem = phase.shortfall(phase.target)
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            return 1
    return 0
