"""AZR training steps with `use_vllm=True, vllm_mode="server"` against a live `trl vllm-serve` process on the default
model (loopback only, a free port), started, killed and restarted by these tests.

Generation goes through the live server. Weight sync cannot run here: TRL pushes weights over vLLM's NCCL
weight-transfer engine, which needs CUDA. Only `VLLMClient.init_communicator` and `VLLMClient.update_named_params`
are replaced, by recorders that consume the weights they are given; every other call (generation, prefix-cache
reset, health) is the real HTTP request. So the server keeps the base weights for the whole test, which the sampling
check relies on.
"""

from __future__ import annotations

import logging
import math

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from azr_trl import AZRTrainer
from azr_trl.generation.vllm_server import VLLMServerUnavailableError

from engine import (
    MAX_COMPLETION,
    MAX_MODEL_LEN,
    MC_ROLLOUTS,
    VLLMServe,
    azr_config,
    check_sampling_settings,
    monte_carlo_call,
    record_server_calls,
    write_seed_file,
)


@pytest.fixture(scope="module")
def server(default_model_path, tmp_path_factory):
    serve = VLLMServe(default_model_path, tmp_path_factory.mktemp("serve") / "server.log")
    serve.start().wait_healthy()
    yield serve
    serve.kill()


@pytest.fixture
def events(monkeypatch):
    """Replaces the two NCCL calls (see the module docstring) with recorders; returns the ordered event list."""
    from trl.generation.vllm_client import VLLMClient

    log: list[str] = []

    def init_communicator(self, device=0):
        log.append("init_communicator")

    def update_named_params(self, metadata, named_params):
        names = [name for name, _ in named_params]
        assert names == [name for name, _, _ in metadata]
        log.append(f"push {len(names)}")

    monkeypatch.setattr(VLLMClient, "init_communicator", init_communicator)
    monkeypatch.setattr(VLLMClient, "update_named_params", update_named_params)
    return log


def _trainer(server, default_model_path, output_dir, **overrides):
    config = azr_config(output_dir, vllm_mode="server", vllm_server_base_url=server.base_url, **overrides)
    return AZRTrainer(
        AutoModelForCausalLM.from_pretrained(default_model_path),
        args=config,
        processing_class=AutoTokenizer.from_pretrained(default_model_path),
    )


class _AfterStep(TrainerCallback):
    def __init__(self, step: int, action):
        self.step, self.action = step, action

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            self.action()


def test_server_steps_sample_as_configured(tmp_path, server, events, monkeypatch, default_model_path):
    calls = []
    record_server_calls(monkeypatch, calls, events)
    trainer = _trainer(server, default_model_path, tmp_path / "out")
    try:
        mc_call = monte_carlo_call(trainer, calls)
        step_calls_start = len(calls)
        trainer.train()
    finally:
        trainer.close()
    assert trainer.state.global_step == 2
    assert all(math.isfinite(row["loss"]) for row in trainer.state.log_history if "loss" in row)
    params = len(list(trainer.model.named_parameters()))
    assert events[:2] == ["init_communicator", f"push {params}"]  # TRL's own sync before the first generation
    step_calls = calls[step_calls_start : step_calls_start + 2]
    check_sampling_settings(step_calls, mc_call, AutoModelForCausalLM.from_pretrained(default_model_path))
    assert mc_call.n == MC_ROLLOUTS and len(mc_call.prompts) == 1  # the server samples the rollouts of a prompt


def test_server_step_completes_with_a_reference_longer_than_the_engine_allows(
    tmp_path, server, events, default_model_path
):
    trainer = _trainer(
        server,
        default_model_path,
        tmp_path / "out",
        max_steps=1,
        seed_files=[str(write_seed_file(tmp_path))],
        task_types=["deduction", "abduction"],
        num_references=2,
        propose_per_type=2,
        solve_per_type=2,
        per_device_train_batch_size=2,
    )
    try:
        trainer.train()
    finally:
        trainer.close()
    assert trainer.state.global_step == 1
    too_long = {k: v for row in trainer.state.log_history for k, v in row.items() if "too_long" in k}
    assert too_long and sum(too_long.values()) > 0, too_long
    # The budget came from the live server's /server_info (its --max_model_len), minus the completion room.
    assert trainer._prompt_token_budget() == MAX_MODEL_LEN - MAX_COMPLETION


def test_run_waits_for_a_restarted_server_and_pushes_the_weights_again(
    tmp_path, server, events, monkeypatch, default_model_path, caplog
):
    calls = []
    record_server_calls(monkeypatch, calls, events)
    trainer = _trainer(server, default_model_path, tmp_path / "out", max_steps=3, vllm_server_retry_max_interval=5.0)
    marks = {}

    def crash_and_restart():
        marks["killed_at"] = len(events)
        marks["identity"] = trainer._vllm_server_retry.known_identity
        server.kill()
        server.start()  # comes back after its usual start-up (tens of seconds); the run must wait for it

    trainer.add_callback(_AfterStep(1, crash_and_restart))
    try:
        with caplog.at_level(logging.WARNING, logger="azr_trl.generation.vllm_server"):
            trainer.train()
    finally:
        trainer.close()
    assert trainer.state.global_step == 3
    assert trainer._vllm_server_retry.reconnects >= 1
    params = len(list(trainer.model.named_parameters()))
    after = events[marks["killed_at"] :]
    # After the restart, weight transfer is set up again and the current weights pushed before any generation.
    first_generation = after.index("generate")
    assert after[:first_generation].count("init_communicator") >= 1
    last_init = max(i for i, e in enumerate(after[:first_generation]) if e == "init_communicator")
    assert after[last_init + 1] == f"push {params}"
    assert f"127.0.0.1:{server.port}" in caplog.text and f"{server.port} restarted" in caplog.text
    # The real server reports the instance_id vLLM sets when it starts: the restart was told by it.
    assert trainer._vllm_server_retry.known_identity not in (None, "", marks["identity"])


def test_seeding_resumes_after_the_server_stays_down_past_the_retry_window(
    tmp_path, server, events, monkeypatch, default_model_path
):
    """The server is killed during the seeding phase (Algorithm 1) and stays down past vllm_server_retry_seconds. The
    run stops without a checkpoint, whose buffer would hold none of the seeds (an automatic resume would then train on
    the zero triplet); the seeds written so far stay in the seed file. With the server back, a restart in the same
    output_dir seeds on from that file and trains.

    The default model cannot write a valid task, so the server's answers to proposer prompts are replaced by valid
    proposals once each request has run on the server (tests/scripts/tiny_azr_run.py)."""
    from transformers.trainer_utils import get_last_checkpoint

    from azr_trl.seeding.generation import SEED_TASKS_FILE

    from scripts.tiny_azr_run import script_server_proposals

    server.wait_healthy()
    output_dir = tmp_path / "out"
    settings = dict(
        seed_num_tasks=6,  # 3 rounds of 2 proposals
        seed_num_induction=0,
        propose_per_type=2,
        solve_per_type=2,
        per_device_train_batch_size=4,
        max_steps=1,
        save_strategy="steps",
        save_steps=1,
        vllm_server_retry_seconds=15,
        vllm_server_retry_max_interval=5.0,
    )
    tokenizer = AutoTokenizer.from_pretrained(default_model_path)
    requests_made = script_server_proposals(monkeypatch, tokenizer, lambda n: server.kill() if n == 2 else None)
    trainer = _trainer(server, default_model_path, output_dir, **settings)
    try:
        with pytest.raises(VLLMServerUnavailableError) as stopped:
            trainer.train()
    finally:
        trainer.close()
    seed_file = output_dir / SEED_TASKS_FILE
    kept = seed_file.read_text().splitlines()
    assert len(requests_made) == 2 and len(kept) == 4
    message = str(stopped.value)
    assert f"127.0.0.1:{server.port}" in message and "vllm_server_retry_seconds=15" in message
    assert "seeding phase had not finished, so no checkpoint was written" in message and str(seed_file) in message
    assert get_last_checkpoint(str(output_dir)) is None and trainer.state.global_step == 0

    server.start().wait_healthy()
    resumed = _trainer(server, default_model_path, output_dir, **settings)
    try:
        resumed.train()
    finally:
        resumed.close()
    (seeding,) = [row for row in resumed.state.log_history if "azr/seeding/tasks/count" in row]
    assert seeding["azr/seeding/tasks/count"] == 6 and seeding["azr/seeding/tasks/added"] == 2
    assert seed_file.read_text().splitlines()[:4] == kept
    assert resumed.state.global_step == 1
    pinned = {t.key() for t in resumed.buffer.tasks("deduction") if t.pinned}
    assert len(pinned) == 7  # the 6 seeds and the zero triplet


def test_run_stops_with_a_checkpoint_when_the_server_is_gone_for_good(tmp_path, server, events, default_model_path):
    server.wait_healthy()
    output_dir = tmp_path / "out"
    trainer = _trainer(
        server,
        default_model_path,
        output_dir,
        max_steps=3,
        vllm_server_retry_seconds=15,
        vllm_server_retry_max_interval=5.0,
    )
    trainer.add_callback(_AfterStep(1, server.kill))
    try:
        with pytest.raises(VLLMServerUnavailableError) as stopped:
            trainer.train()
    finally:
        trainer.close()
    message = str(stopped.value)
    checkpoint = output_dir / "checkpoint-1"
    assert f"127.0.0.1:{server.port}" in message and "vllm_server_retry_seconds=15" in message
    assert str(checkpoint) in message
    assert (checkpoint / "azr_buffer.json").is_file() and (checkpoint / "trainer_state.json").is_file()

    # The checkpoint resumes once the server is back.
    server.start().wait_healthy()
    resumed = _trainer(server, default_model_path, output_dir, max_steps=2)
    try:
        resumed.train(resume_from_checkpoint=str(checkpoint))
    finally:
        resumed.close()
    assert resumed.state.global_step == 2
