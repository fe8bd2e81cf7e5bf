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


def test_completion_length_metrics_are_grpos_over_the_trained_rows():
    """GRPO's `_generate` metrics for AZR's rows: a completion without EOS/pad at the end was cut by the budget, and
    prompt plus completion tokens go into `num_input_tokens_seen` (on one process, gather is the identity)."""
    from types import SimpleNamespace

    from accelerate import Accelerator

    from azr_trl.selfplay.step_metrics import completion_length_metrics

    eos, pad = 7, 0
    trainer = SimpleNamespace(
        accelerator=Accelerator(cpu=True),
        eos_token_ids=[eos],
        _tokenizer=SimpleNamespace(pad_token_id=pad),
        state=SimpleNamespace(num_input_tokens_seen=100),
    )
    rollouts = Rollouts(
        prompts=["a", "b", "c"],
        task_types=["deduction"] * 3,
        prompt_ids=[[1, 2, 3], [1, 2, 3, 4, 5], [1]],
        completion_ids=[[4, 5, eos], [4, 4, 4, 4], [9, pad]],
        sampling_logps=None,
        texts=["", "", ""],
    )
    metrics = completion_length_metrics(trainer, rollouts)
    assert metrics == {
        "completions/mean_length": 3.0,
        "completions/min_length": 2.0,
        "completions/max_length": 4.0,
        "completions/clipped_ratio": pytest.approx(1 / 3),
        "completions/mean_terminated_length": 2.5,
        "completions/min_terminated_length": 2.0,
        "completions/max_terminated_length": 3.0,
    }
    assert trainer.state.num_input_tokens_seen == 100 + (3 + 5 + 1) + (3 + 4 + 2)
    # Every completion cut: the terminated lengths are 0, as GRPO logs them.
    rollouts.completion_ids = [[4], [4, 4], [5]]
    metrics = completion_length_metrics(trainer, rollouts)
    assert metrics["completions/clipped_ratio"] == 1.0 and metrics["completions/max_terminated_length"] == 0.0
