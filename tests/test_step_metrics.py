import time

import pytest

from azr_trl.selfplay.rollouts import Rollouts
from azr_trl.selfplay.step_metrics import PhaseTimer


def test_phase_timer_records_a_phase_and_adds_repeats():
    timer = PhaseTimer()
    with timer("generate_solve"):
        time.sleep(0.02)
    first = timer.seconds["generate_solve"]
    assert 0.02 <= first < 1.0
    with timer("execute_wait"):
        pass
    with timer("generate_solve"):
        time.sleep(0.01)
    assert timer.seconds["generate_solve"] >= first + 0.01  # a phase timed again adds to its total
    assert list(timer.seconds) == ["generate_solve", "execute_wait"]  # in the order the phases first ran


def test_phase_timer_nested_phases_count_for_both():
    timer = PhaseTimer()
    with timer("outer"):
        time.sleep(0.01)
        with timer("inner"):
            time.sleep(0.02)
    assert timer.seconds["inner"] >= 0.02
    assert timer.seconds["outer"] >= timer.seconds["inner"] + 0.01


def test_phase_timer_times_a_phase_that_raises_and_propagates_the_error():
    timer = PhaseTimer()
    with pytest.raises(RuntimeError, match="engine down"), timer("generate_propose"):
        time.sleep(0.01)
        raise RuntimeError("engine down")
    assert timer.seconds["generate_propose"] >= 0.01


def test_phase_timer_returns_from_inside_a_phase():
    timer = PhaseTimer()

    def early() -> str:
        with timer("generate_mc"):
            return "no rollouts"

    assert early() == "no rollouts" and "generate_mc" in timer.seconds


def _rollouts(tag: str, logps) -> Rollouts:
    return Rollouts([f"prompt {tag}"], ["deduction"], [[1, 2]], [[3]], logps, [f"text {tag}"])


def test_rollouts_concatenate_row_aligned():
    both = _rollouts("p", [[-0.5]]) + _rollouts("s", [[-1.0]])
    assert both.prompts == ["prompt p", "prompt s"] and both.texts == ["text p", "text s"]
    assert both.prompt_ids == [[1, 2], [1, 2]] and both.completion_ids == [[3], [3]]
    assert both.sampling_logps == [[-0.5], [-1.0]]
    # HF generate returns no sampling log-probs: the joined rows have none either.
    assert (_rollouts("p", None) + _rollouts("s", [[-1.0]])).sampling_logps is None
    assert both.completions("chat") == [
        [{"role": "assistant", "content": "text p"}],
        [{"role": "assistant", "content": "text s"}],
    ]
    assert both.completions("r1") == ["text p", "text s"]
