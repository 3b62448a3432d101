#!/usr/bin/env bash
# The accelerator check: on a GPU or TPU machine, in at most 8 minutes, (1) installs the wheels carried in
# wheels/ for whatever of grain, tensorflow-datasets, array-record, ml-collections and pytest is missing
# (scripts/prepare_accelerator_wheels.sh downloads them), (2) runs `python -m bigsmall_jax.benchmark` for
# BigSmall in float32 and in bfloat16, (3) a short training run of the default config
# (configs/synthetic.py, capped at a few steps per epoch), (4) the tests that need nothing beyond the
# package, and (5) writes one JSON with the device, the versions, each part's figures, status and seconds.
#
#   scripts/accelerator_check.sh [--out DIR] [--dry-run] [--plan]
#
#   --out DIR   where the JSON (accelerator_check.json), the benchmark JSONs and the logs go ($OUT, else
#               ./accelerator_check)
#   --dry-run   the same steps, tiny (benchmark --quick, a tiny training run, a few tests): checks the
#               script end to end on a CPU
#   --plan      prints the commands and exits
#
# With this project's device tool: prepare the wheels here, then run
#   command "scripts/accelerator_check.sh --out $OUT", carry ["wheels"]   (wheels/ is git-ignored: carry it)
#
# Every step has its own time limit; one that fails or runs out is recorded (status, seconds, the end of
# its log) and the next one runs. The exit status is 0 when every step passed.
set -uo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/.."
out="${OUT:-accelerator_check}"
dry=0
plan=0
install_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --plan) plan=1; shift ;;
    --install) install_only=1; shift ;;
    *) echo "error: unknown argument $1 (use --out DIR, --dry-run, --plan)" >&2; exit 2 ;;
  esac
done
install_missing() {
  local missing
  missing="$(python3 -c 'import importlib.util as u, sys; print(" ".join(m for m in sys.argv[1:] if u.find_spec(m) is None))' \
    grain tensorflow_datasets array_record ml_collections pytest)"
  if [ -z "$missing" ]; then echo "nothing to install"; return 0; fi
  echo "missing: $missing"
  ls wheels/*.whl >/dev/null 2>&1 || { echo "error: wheels/: no wheels (run scripts/prepare_accelerator_wheels.sh)"; return 1; }
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/bigsmall_site wheels/*.whl
}

if [ "$install_only" = 1 ]; then install_missing; exit $?; fi
mkdir -p "$out" || { echo "error: $out: cannot create the output folder" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
data="$work/data"

if [ "$dry" = 1 ]; then
  bench_args=(--quick --batch 2 --repeats 2)
  train_args=(train.num_epochs=1 train.steps_per_epoch=2 train.batch_clips=2 train.eval_batch_clips=4
              "model.big_filters=(4,4,4,8,8,8)" "model.small_filters=(4,4,4,8)" model.dense_units=8
              "dataset.settings={'n_subjects': 4, 'videos_per_subject': 1, 'duration_s': 2.0, 'fps': 25.0, 'frame_size': 48, 'seed': 0}")
  tests=(tests/datasets/test_input_pipeline.py::test_device_big_zeroes_a_constant_video_like_the_host
         tests/train/test_parallel.py)
  limits=(60 240 240 300)
else
  bench_args=(--models bigsmall --batch 256 --repeats 10)
  # The default config on the benchmark's pipeline dataset (built by the float32 benchmark in the same data
  # dir: the default 18-subject dataset alone takes minutes to render).
  train_args=(train.num_epochs=1 train.steps_per_epoch=100
              "dataset.settings={'n_subjects': 6, 'videos_per_subject': 2, 'duration_s': 8.0, 'fps': 25.0, 'frame_size': 64, 'seed': 0}")
  tests=(tests/model tests/train/test_mixed_precision.py tests/train/test_step.py tests/train/test_parallel.py
         tests/datasets/test_input_pipeline.py tests/test_runtime.py)
  limits=(30 110 90 120)  # install, benchmark (each dtype), training, tests: 460 s, under 8 min in all
fi

# step NAME LIMIT_S COMMAND...: runs one step with its log in $out/NAME.log and records it in $work/steps.
step() {
  local name="$1" limit="$2"; shift 2
  if [ "$plan" = 1 ]; then printf '%s (%ss):' "$name" "$limit"; printf ' %q' "$@"; echo; return 0; fi
  local start end rc
  start=$(date +%s.%N)
  timeout --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  echo "$name $rc $start $end" >>"$work/steps"
  echo "$name: exit $rc, $(python3 -c "print(round($end - $start, 1))") s" >&2
}

if [ "$plan" = 0 ]; then
  step install "${limits[0]}" bash "$self" --install
  export PYTHONPATH="$PWD:/tmp/bigsmall_site${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "install (${limits[0]}s): pip install --no-index --no-deps --target /tmp/bigsmall_site wheels/*.whl (what is missing)"
fi
export BIGSMALL_DATA_DIR="$data"
step bench_float32 "${limits[1]}" python3 -m bigsmall_jax.benchmark "${bench_args[@]}" --dtype float32 \
  --data-dir "$data" --output "$out/bench_float32.json"
step bench_bfloat16 "${limits[1]}" python3 -m bigsmall_jax.benchmark "${bench_args[@]}" --dtype bfloat16 \
  --no-input-pipeline --output "$out/bench_bfloat16.json"
step train "${limits[2]}" python3 -m bigsmall_jax.train --workdir "$work/run" "${train_args[@]}"
step tests "${limits[3]}" python3 -m pytest -q -p no:cacheprovider --junitxml "$out/tests.xml" "${tests[@]}"
[ "$plan" = 1 ] && exit 0
cp "$work/run/metrics.json" "$out/train_metrics.json" 2>/dev/null
cp "$work/run/metrics.jsonl" "$out/train_metrics.jsonl" 2>/dev/null
python3 scripts/accelerator_report.py "$work/steps" "$out" "$dry"
