"""Running benchmarks end to end: prompts, generation, scoring, and the results document.

```python
from azr_trl.evaluation import evaluate_model
results = evaluate_model("default", ["cruxeval_o", "humaneval"], limit=10)
```

The results document (also what ``azr-trl eval --output`` writes)::

    {"model": ..., "settings": {...},
     "benchmarks": {name: {"title", "category", "source", "n", "num_samples", "metric", "accuracy",
                           ["pass@k", ...], "records": [{"id", "prompt", "reference", "correct", "samples": [...]}]}},
     "aggregates": {"code_avg", "math_avg", "total"}}

Scores are fractions in [0, 1]; ``accuracy`` is the mean fraction of correct samples (pass@1).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from azr_trl.executor import ExecutorConfig
from azr_trl.tasks.prompts import resolve_prompt_format

from ..generation.generators import HFGenerator, SamplingSettings, VLLMGenerator, load_hf_model, render_prompt
from .metrics import aggregate_scores, ks_for, mean_pass_at_k
from .prompts import code_generation_prompt, math_prompt
from .registry import CODE_GENERATION, CODE_REASONING, Benchmark, get_benchmark
from .scoring import make_benchmark_executor, reasoning_task, score_completions


logger = logging.getLogger(__name__)


@dataclass
class EvalSettings:
    """Everything besides the model that decides an evaluation's numbers (recorded in the results).

    Args:
        prompt_format: ``auto`` (chat if the tokenizer has a chat template), ``chat`` or ``r1``.
        require_think: code reasoning only: whether an answer needs a ``<think>`` block to count (None: r1 yes,
            chat no, as in training).
        sampling: decoding settings (greedy by default).
        executor: the sandbox the programs run in (backend, timeout per program, workers, memory, banned modules);
            a code-generation program runs all of one problem's tests within one timeout.
    """

    prompt_format: str = "auto"
    require_think: bool | None = None
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)


def build_prompts(benchmark: Benchmark, items: Sequence[Any], fmt: str) -> list:
    """The prompt of every item in format ``fmt`` (code reasoning: the AZR solver prompt of its task type)."""
    if benchmark.category == CODE_REASONING:
        from azr_trl.tasks import get_task_spec

        spec = get_task_spec(benchmark.task_type)
        return [spec.solve_prompt(reasoning_task(item, benchmark.task_type), fmt) for item in items]
    if benchmark.category == CODE_GENERATION:
        return [code_generation_prompt(item, fmt) for item in items]
    return [math_prompt(item, fmt) for item in items]


def _reference(benchmark: Benchmark, item: Any) -> dict[str, Any]:
    if benchmark.category == CODE_REASONING:
        return {"program": item.program, "input": item.input, "output": item.output}
    if benchmark.category == CODE_GENERATION:
        return {"entry_point": item.entry_point, "test_style": item.test_style}
    return {"answer": item.answer}


def summarize(
    benchmark: Benchmark,
    items: Sequence[Any],
    prompts: Sequence[str],
    samples: Sequence[Sequence[dict[str, Any]]],
    num_samples: int,
) -> dict[str, Any]:
    """One benchmark's entry of the results document: scores, ``n`` and per-item records."""
    correct = [[bool(s["correct"]) for s in item_samples] for item_samples in samples]
    n_samples = sum(len(c) for c in correct)
    accuracy = sum(sum(c) for c in correct) / n_samples if n_samples else 0.0
    entry: dict[str, Any] = {
        "title": benchmark.title,
        "category": benchmark.category,
        "source": benchmark.source,
        "n": len(items),
        "num_samples": num_samples,
        "metric": "pass@1" if benchmark.category == CODE_GENERATION else "accuracy",
        "accuracy": accuracy,
    }
    if benchmark.task_type:
        entry["task_type"] = benchmark.task_type
    if benchmark.category == CODE_GENERATION or num_samples > 1:
        for k in ks_for(num_samples):
            entry[f"pass@{k}"] = mean_pass_at_k(correct, k)
    if benchmark.category == CODE_REASONING and n_samples:
        bad = sum(not s.get("format_ok", True) for item_samples in samples for s in item_samples)
        entry["format_error_rate"] = bad / n_samples
    entry["records"] = [
        {
            "id": item.id,
            "prompt": prompt,
            "reference": _reference(benchmark, item),
            "correct": sum(c) / len(c) if c else 0.0,
            "samples": list(item_samples),
        }
        for item, prompt, c, item_samples in zip(items, prompts, correct, samples, strict=True)
    ]
    return entry


def evaluate_benchmark(
    benchmark: Benchmark,
    items: Sequence[Any],
    generator,
    tokenizer,
    settings: EvalSettings,
    executor=None,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate for and score one benchmark's ``items`` with ``generator`` (an `HFGenerator` or `VLLMGenerator`)."""
    fmt, require_think = resolve_prompt_format(settings.prompt_format, settings.require_think, tokenizer)
    prompts = build_prompts(benchmark, items, fmt)
    start = time.perf_counter()
    completions = generator.generate(prompts, settings.sampling, progress=progress, desc=benchmark.name)
    gen_seconds = time.perf_counter() - start
    samples = score_completions(benchmark, items, completions, executor=executor, require_think=require_think)
    texts = [render_prompt(tokenizer, p) for p in prompts]
    entry = summarize(benchmark, items, texts, samples, settings.sampling.num_samples)
    entry["seconds"] = {"generate": gen_seconds, "score": time.perf_counter() - start - gen_seconds}
    return entry


def load_benchmarks(
    names: Sequence[str], datasets: Mapping[str, str] | None = None, limit: int | None = None
) -> dict[str, list]:
    """Items of every named benchmark, each from its local file in ``datasets`` if given. All data is loaded before
    any model so that a missing file or an unreachable Hub fails fast."""
    datasets = dict(datasets or {})
    unknown = set(datasets) - set(names)
    if unknown:
        raise KeyError(f"--dataset given for benchmarks that are not evaluated: {sorted(unknown)}")
    return {name: get_benchmark(name).load(datasets.get(name), limit=limit) for name in names}


def load_model(model: str, dtype: str = "auto", device: str | None = None):
    """Load a causal LM and its tokenizer for the HF backend (``default`` is the embedded SmolLM2-135M-Instruct)."""
    from azr_trl.offline_models import resolve_model_path

    path = resolve_model_path(model)
    try:
        lm, tokenizer = load_hf_model(path, dtype=dtype, device=device)
    except OSError as err:
        raise OSError(f"Cannot load model '{model}' (resolved to {path}): {err}") from err
    return path, lm, tokenizer


def evaluate_model(
    model: str,
    benchmarks: Sequence[str],
    *,
    datasets: Mapping[str, str] | None = None,
    limit: int | None = None,
    settings: EvalSettings | None = None,
    backend: str = "hf",
    batch_size: int = 8,
    dtype: str = "auto",
    vllm_kwargs: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``benchmarks`` and return the results document (see the module docstring)."""
    settings = settings or EvalSettings()
    items = load_benchmarks(benchmarks, datasets, limit)
    if backend == "hf":
        path, lm, tokenizer = load_model(model, dtype=dtype)
        generator = HFGenerator(lm, tokenizer, batch_size=batch_size)
    elif backend == "vllm":
        from transformers import AutoTokenizer

        from azr_trl.offline_models import resolve_model_path

        path = resolve_model_path(model)
        tokenizer = AutoTokenizer.from_pretrained(path)
        generator = VLLMGenerator(path, tokenizer, dtype=dtype, seed=settings.sampling.seed, **dict(vllm_kwargs or {}))
    else:
        raise ValueError(f"backend must be 'hf' or 'vllm', got {backend!r}")

    needs_executor = any(get_benchmark(n).category in (CODE_REASONING, CODE_GENERATION) for n in benchmarks)
    executor = make_benchmark_executor(settings.executor) if needs_executor else None
    results: dict[str, Any] = {
        "model": model,
        "model_path": str(path),
        "backend": backend,
        "settings": _settings_dict(settings, tokenizer),
        "benchmarks": {},
    }
    try:
        for name in benchmarks:
            logger.info("Evaluating %s on %d items", name, len(items[name]))
            results["benchmarks"][name] = evaluate_benchmark(
                get_benchmark(name), items[name], generator, tokenizer, settings, executor, progress=progress
            )
    finally:
        if executor is not None:
            executor.close()
    results["aggregates"] = aggregate_scores({n: r["accuracy"] for n, r in results["benchmarks"].items()})
    return results


def _settings_dict(settings: EvalSettings, tokenizer) -> dict[str, Any]:
    out = asdict(settings)
    out["prompt_format"], out["require_think"] = resolve_prompt_format(
        settings.prompt_format, settings.require_think, tokenizer
    )
    return out


def write_results(results: Mapping[str, Any], path: str | Path) -> Path:
    """Write the results document as indented JSON (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def results_table(results: Mapping[str, Any]):
    """A `rich` table of the scores (in %), one row per benchmark plus the aggregates."""
    from rich.table import Table

    table = Table(title=f"azr-trl eval: {results.get('model', '')}")
    table.add_column("Benchmark")
    table.add_column("Category")
    table.add_column("n", justify="right")
    table.add_column("Metric")
    table.add_column("Score (%)", justify="right")
    table.add_column("Other", justify="left")
    for name, entry in results["benchmarks"].items():
        others = [f"{k} {100 * v:.1f}" for k, v in entry.items() if k.startswith("pass@") and k != entry["metric"]]
        if "format_error_rate" in entry:
            others.append(f"format errors {100 * entry['format_error_rate']:.1f}")
        score = entry.get(entry["metric"], entry["accuracy"])
        table.add_row(
            f"{entry['title']} ({name})", entry["category"], str(entry["n"]), entry["metric"], f"{100 * score:.1f}",
            ", ".join(others),
        )  # fmt: skip
    labels = {"code_avg": "Code Avg", "math_avg": "Math Avg", "total": "Total"}
    for key, value in results.get("aggregates", {}).items():
        table.add_row(labels.get(key, key), "", "", "", f"{100 * value:.1f}", "", style="bold")
    return table


def print_results(results: Mapping[str, Any], console=None) -> None:
    """Print :func:`results_table` to ``console`` (a new `rich` console on stdout by default)."""
    from rich.console import Console

    (console or Console()).print(results_table(results))
