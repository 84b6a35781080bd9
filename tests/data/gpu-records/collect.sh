#!/usr/bin/env bash
# The GPU check of issue 5, as one script for a lent GPU machine (torch there, no Docker, no
# network): the bundled example run natively on the GPU twice under toolkit's policy and twice
# with the libraries' defaults (--no-policy), packed as DEST/gpu-records.tar.gz.
#
#   bash tests/data/gpu-records/collect.sh DEST        (device tool: DEST=$OUT, carry
#                                                       .toolkit/config.json if PyYAML is absent)
# Then, here: tar -xzf gpu-records.tar.gz -C tests/data/gpu-records
#
# Environment: PYTHON (default python3), TARGET (default gpu), CUDA=0 to allow a CPU (a dry run).
set -euo pipefail
dest=$(realpath "${1:?usage: collect.sh DEST}")
cd "$(dirname "$0")/../../.."
python=${PYTHON:-python3}
target=${TARGET:-gpu}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# The experiment runs `python train.py`: make `python` this interpreter, wherever it lives.
shim=$(mktemp -d)
printf '#!/bin/sh\nexec %q "$@"\n' "$(command -v "$python")" >"$shim/python"
chmod +x "$shim/python"
export PATH="$shim:$PATH"

if [ "${CUDA:-1}" = 1 ]; then
  "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA GPU for torch")'
fi
"$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || true

mkdir -p runs
before=(runs/*)
for mode in strict strict defaults defaults; do
  flags=(--native --target "$target")
  [ "$mode" = defaults ] && flags+=(--no-policy)
  echo "== $mode: toolkit run ${flags[*]}"
  "$python" -m toolkit run "${flags[@]}"
done

new=()
for run in runs/*; do
  [[ " ${before[*]} " == *" $run "* ]] || new+=("$(basename "$run")")
done
mkdir -p "$dest"
tar -czf "$dest/gpu-records.tar.gz" -C runs "${new[@]}"
for run in "${new[@]}"; do
  "$python" - "runs/$run/record.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
print(doc["id"], doc["status"], "policy" if doc["determinism"]["policy"] else "defaults",
      doc["metrics"]["primary"], doc["metrics"]["primary_final"],
      (doc.get("accelerator") or {}).get("devices"))
PY
done
