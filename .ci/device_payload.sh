#!/usr/bin/env bash
# What a device run of .ci/gpu_check.py needs that the device machine cannot fetch (it reaches no hub and no
# registry), made on this machine: the embedded model's tokenizer files and config.json in .devdata/tok (no weights:
# the benchmarks build models from configs), the Alpaca 5% data in .devdata (a copy for the device only, ignored by
# git), and wheels of Liger-Kernel and Cut Cross-Entropy in .whl (the kernel benchmark's comparisons, the Liger A/B).
# Then: run(carry=[".devdata", ".whl"], command=<the command in gpu_check.py's docstring>).
set -euo pipefail
cd "$(dirname "$0")/.."
python - <<'PY'
import shutil
from pathlib import Path
from ifd_nb.models import embedded_model_dir
from ifd_nb.data import shared_data_path
src, dst = embedded_model_dir(), Path(".devdata/tok")
dst.mkdir(parents=True, exist_ok=True)
for f in src.iterdir():
    if f.suffix not in (".safetensors", ".bin"): shutil.copy(f, dst/f.name)
shutil.copy(shared_data_path("alpaca_cherry_5pct.json"), ".devdata/")
print("wrote", sorted(p.name for p in dst.iterdir()), "and .devdata/alpaca_cherry_5pct.json")
PY
python -m pip download -q --no-deps -d .whl liger-kernel cut-cross-entropy
ls .whl
