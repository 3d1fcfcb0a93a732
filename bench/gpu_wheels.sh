#!/usr/bin/env bash
# Once, on a machine with network access: download the wheels that bench/gpu_check.sh installs on a bare GPU
# machine (whose image has torch, timm, typer, rich, numpy, scipy, pillow, tqdm, but no pydantic and no
# torch-fidelity, and no network). CPython 3.12, manylinux x86_64, binary wheels only, into .whl/ at the repository
# root (kept out of git through .git/info/exclude). Under 64 MiB in all (about 3 MiB).
#
#     bash bench/gpu_wheels.sh          # then carry .whl/ to the GPU machine with the repository
#
# The versions are the ones the test suite runs with; each wheel's own needs (Requires-Dist) are listed here
# too, except those the GPU image already has (numpy, scipy, pillow, torch, torchvision, tqdm).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEST=.whl
WHEELS=(
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  typing-extensions==4.16.0 torch-fidelity==0.4.0
)
if [[ -d .git || -f .git ]]; then
  exclude=$(git rev-parse --git-path info/exclude)
  mkdir -p "$(dirname "$exclude")"
  grep -qx "/$DEST/" "$exclude" 2>/dev/null || echo "/$DEST/" >> "$exclude"
fi
rm -rf "$DEST"
mkdir -p "$DEST"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" "${WHEELS[@]}"
echo "gpu_wheels: $(ls "$DEST" | wc -l) wheels in $DEST ($(du -sh "$DEST" | cut -f1)):"
for w in "$DEST"/*.whl; do
  needs=$(unzip -p "$w" '*/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' | sed 's/^Requires-Dist: //' | tr '\n' ';' || true)
  echo "  $(basename "$w")  needs: ${needs:-nothing}"
done
