#!/usr/bin/env bash
# Downloads, here (with network access to PyPI), the wheels that scripts/accelerator_check.sh installs on an
# offline GPU/TPU machine that has JAX with CUDA, flax, optax, orbax, torch and opencv but not grain,
# tensorflow-datasets, array-record or ml-collections: those four, pinned to this venv's versions, and the
# small pure-Python packages they need that such a machine usually lacks, and pytest for the tests. Target: CPython 3.12, x86-64 Linux
# (change PY_VERSION for another Python). The folder (wheels/, git-ignored) travels with the working tree.
#
#   scripts/prepare_accelerator_wheels.sh [WHEEL_DIR]   # default: wheels/
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-wheels}"
py_version="${PY_VERSION:-3.12}"
mkdir -p "$out"
version() { python3 -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || true; }
specs=()
for name in grain tensorflow-datasets array-record ml-collections dm-tree simple-parsing \
            docstring-parser tensorflow-metadata immutabledict termcolor toml cloudpickle wrapt \
            pytest pluggy iniconfig; do
  v="$(version "$name")"
  specs+=("${name}${v:+==$v}")
done
platforms=()
for n in 17 27 28 31 34; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
failed=()
for spec in "${specs[@]}"; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py_version" --implementation cp \
    "${platforms[@]}" --platform manylinux2014_x86_64 --platform any -d "$out" "$spec" 2>/dev/null || failed+=("$spec")
done
if [ ${#failed[@]} -gt 0 ]; then echo "error: no wheel for ${failed[*]}" >&2; exit 1; fi
du -sh "$out"
ls "$out"
