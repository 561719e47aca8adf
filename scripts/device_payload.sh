#!/usr/bin/env bash
# Builds what a lent GPU machine needs to run scripts/train_parallel.py beside the checkout: it has Python 3.12
# and JAX but no Keras and no internet, and only the checkout travels (64 MiB in all). Both folders are git-ignored.
#   .whl/                      wheels of this venv's Keras and of the two of its needs that machine lacks (namex, optree)
#   .devdata/fer2013.tar.xz    FER-2013 train + test as JPEGs (about 39 MB; unpack it to the same path as here,
#                              so that the runs' config.json names the data eval_ensemble finds here)
# Usage: scripts/device_payload.sh [FER2013_DIR]      (default: $FER2013_DIR, else data/fer2013)
set -euo pipefail
cd "$(dirname "$0")/.."
data="$(cd "${1:-${FER2013_DIR:-data/fer2013}}" && pwd -P)"
[ -d "$data/train" ] && [ -d "$data/test" ] || { echo "error: $data has no train/ and test/ folders" >&2; exit 2; }
versions=$(.venv/bin/python -c "from importlib.metadata import version as v; print(*(f'{p}=={v(p)}' for p in ('keras', 'namex', 'optree')))")
rm -rf .whl && mkdir -p .whl .devdata
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl $versions
tar cf - -C "$(dirname "$data")" "$(basename "$data")/train" "$(basename "$data")/test" | xz -9 -T2 > .devdata/fer2013.tar.xz
ls -l .whl .devdata
echo "unpack there with: python3 -c \"import tarfile; tarfile.open('.devdata/fer2013.tar.xz').extractall('$(dirname "$data")')\""
