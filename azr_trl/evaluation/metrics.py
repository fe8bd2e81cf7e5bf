"""Scores from per-sample correctness: pass@k and the paper's aggregates (Code Avg, Math Avg, Total)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


# The paper's aggregates (README tables of the reference implementation): Code Avg over the three code-generation
# benchmarks, Math Avg over the six math sets, Total the mean of the two.
CODE_AVG_BENCHMARKS: tuple[str, ...] = ("humaneval_plus", "mbpp_plus", "lcb_generation")
MATH_AVG_BENCHMARKS: tuple[str, ...] = ("aime24", "aime25", "amc23", "math500", "olympiadbench", "minerva")


def pass_at_k(num_samples: int, num_correct: int, k: int) -> float:
    """Unbiased estimator of pass@k for one problem: ``1 - C(n - c, k) / C(n, k)`` (Chen et al., 2021).

    Computed as a running product so that large ``n`` neither overflows nor loses precision.

    ``evaluate.load("code_eval")`` fetches its script from the Hub (unreachable offline) and runs the candidate
    programs in the evaluating process. The project's own `evaluate` module (``azr_trl/evaluation/execution_metric``)
    runs them in the sandboxed executor and computes its pass@k with this function.
    """
    if k <= 0:
        raise ValueError(f"pass@k needs k >= 1, got k={k}")
    if num_samples < k:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {num_samples}")
    if not 0 <= num_correct <= num_samples:
        raise ValueError(f"num_correct={num_correct} is outside [0, num_samples={num_samples}]")
    if num_samples - num_correct < k:
        return 1.0
    miss = 1.0
    for i in range(num_samples - num_correct + 1, num_samples + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def mean_pass_at_k(correct: Sequence[Sequence[bool]], k: int) -> float:
    """Mean over problems of :func:`pass_at_k`, where ``correct[i]`` holds one flag per sample of problem ``i``."""
    if not correct:
        return 0.0
    return sum(pass_at_k(len(flags), sum(bool(f) for f in flags), k) for flags in correct) / len(correct)


def ks_for(num_samples: int) -> list[int]:
    """The k values to report for ``num_samples`` samples per problem: 1, 5, 10, 25, 50, 100 up to ``num_samples``,
    plus ``num_samples`` itself."""
    ks = [k for k in (1, 5, 10, 25, 50, 100) if k <= num_samples]
    if num_samples not in ks:
        ks.append(num_samples)
    return ks


def aggregate_scores(scores: Mapping[str, float]) -> dict[str, float]:
    """Code Avg, Math Avg and Total over the benchmarks present in ``scores`` (name -> score in [0, 1]).

    An average is reported only if at least one of its benchmarks was run; Total is the mean of the averages that
    exist (the paper's definition when both do).
    """
    out: dict[str, float] = {}
    code = [scores[name] for name in CODE_AVG_BENCHMARKS if name in scores]
    math = [scores[name] for name in MATH_AVG_BENCHMARKS if name in scores]
    if code:
        out["code_avg"] = sum(code) / len(code)
    if math:
        out["math_avg"] = sum(math) / len(math)
    if out:
        out["total"] = sum(out.values()) / len(out)
    return out


def paired_difference(
    before: Sequence[float], after: Sequence[float], confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``after - before`` over paired items with a percentile bootstrap interval: ``(mean, low, high)``.

    The items (not the samples) are resampled, as for a before/after comparison on one fixed set of tasks.
    """
    import numpy as np
    from scipy.stats import bootstrap

    if len(before) != len(after) or not before:
        raise ValueError(f"need the same non-zero number of paired items, got {len(before)} and {len(after)}")
    a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    mean = float((b - a).mean())
    if np.all(b - a == mean):  # no spread to resample: the interval is the point
        return mean, mean, mean
    result = bootstrap(
        (a, b),
        lambda x, y, axis=-1: (y - x).mean(axis=axis),
        paired=True,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        random_state=seed,
    )
    return mean, float(result.confidence_interval.low), float(result.confidence_interval.high)
