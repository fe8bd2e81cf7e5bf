"""The prompt format a model was trained with travels with it.

Training writes ``azr_prompt_format.json`` (``{"prompt_format": "r1", "require_think": true}``) into the run
directory, and the model card says it too. `azr-trl eval` and `azr-trl seed` default to it when the model folder, or
the run directory of a ``checkpoint-N`` folder, holds the file (or a Hub repository does, where the Hub is reachable):
a base model trained in the r1 format is then evaluated in r1 even though its tokenizer ships a chat template.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..tasks.prompts import PROMPT_FORMATS


logger = logging.getLogger(__name__)

PROMPT_FORMAT_FILE = "azr_prompt_format.json"


def save_prompt_format(folder: str | Path, prompt_format: str, require_think: bool) -> Path:
    """Write the resolved training prompt format into ``folder`` (created if needed)."""
    path = Path(folder) / PROMPT_FORMAT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"prompt_format": prompt_format, "require_think": require_think}, indent=2) + "\n")
    return path


def find_prompt_format(model: str) -> tuple[dict[str, Any], str] | None:
    """The saved training format of ``model`` and where it was found: the model folder, its parent (the run
    directory of a checkpoint), or the Hub repository; None when there is none."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        for candidate in (folder / PROMPT_FORMAT_FILE, folder.parent / PROMPT_FORMAT_FILE):
            if candidate.is_file():
                return _read(candidate), str(candidate)
        return None
    if model.count("/") != 1 or model.startswith((".", "/", "~")):
        return None
    try:  # a Hub repository pushed by a training run carries the file too
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(model, PROMPT_FORMAT_FILE)
    except Exception:  # offline, no such repo or no such file: no saved format
        return None
    return _read(Path(path)), f"{model}/{PROMPT_FORMAT_FILE}"


def _read(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if data.get("prompt_format") not in PROMPT_FORMATS or not isinstance(data.get("require_think"), bool):
        raise ValueError(f"{path}: expected {{'prompt_format': 'chat' | 'r1', 'require_think': true | false}}")
    return data


def trained_defaults(model: str, prompt_format: str | None, require_think: bool | None) -> tuple[str, bool | None]:
    """The prompt format and think requirement to use: what the user gave, else what the model was trained with,
    else ``auto`` (chat when the tokenizer has a chat template) and None (r1 yes, chat no)."""
    found = find_prompt_format(model) if prompt_format is None or require_think is None else None
    if found is not None:
        saved, where = found
        if prompt_format is None:
            logger.info("Prompt format %s, as the model was trained (%s)", saved["prompt_format"], where)
            prompt_format = saved["prompt_format"]
        if require_think is None:
            require_think = saved["require_think"]
    return prompt_format or "auto", require_think


def model_card_section(prompt_format: str, require_think: bool) -> str:
    """The model card's paragraph about the training prompt format."""
    how = (
        "the task as a user message through the tokenizer's chat template"
        if prompt_format == "chat"
        else "the plain R1 template (`A conversation between User and Assistant ... Assistant: <think>`)"
    )
    return (
        "\n## Prompt format\n\n"
        f"Trained with `prompt_format: {prompt_format}` ({how}); a completion "
        f"{'needs' if require_think else 'does not need'} a `<think>` block (`require_think: "
        f"{str(require_think).lower()}`). Prompt this model the same way: `azr-trl eval` and `azr-trl seed` read "
        f"`{PROMPT_FORMAT_FILE}` and do so by default.\n"
    )
