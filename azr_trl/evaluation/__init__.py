"""Evaluation: code-reasoning, code-generation and math benchmarks, and the in-training evaluation callback.

```python
from azr_trl.evaluation import AZREvalCallback, evaluate_model, BENCHMARKS
```

Names are imported lazily so that ``azr-trl --help`` does not load torch or transformers.
"""

from __future__ import annotations

import importlib
from typing import Any


_EXPORTS = {
    "BENCHMARKS": "registry",
    "Benchmark": "registry",
    "get_benchmark": "registry",
    "parse_benchmark_list": "registry",
    "BenchmarkDataError": "data",
    "pass_at_k": "metrics",
    "aggregate_scores": "metrics",
    "extract_math_answer": "math_grading",
    "grade_math": "math_grading",
    "SamplingSettings": "..generation.generators",
    "HFGenerator": "..generation.generators",
    "VLLMGenerator": "..generation.generators",
    "EvalSettings": "runner",
    "evaluate_model": "runner",
    "evaluate_benchmark": "runner",
    "print_results": "runner",
    "write_results": "runner",
    "score_completions": "scoring",
    "update_model_card": "model_card",
    "push_results_to_hub": "model_card",
    "AZREvalCallback": "callback",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _EXPORTS[name]
    return getattr(importlib.import_module(module if module.startswith(".") else f".{module}", __name__), name)
