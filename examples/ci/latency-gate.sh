#!/usr/bin/env bash
# A latency gate for any CI system (the same steps as latency-gate.yml, GitHub Actions):
#   examples/ci/latency-gate.sh MODEL BASELINE
# exports MODEL (a file `compress` reads, e.g. model.pt, or `demo` for the built-in teacher), benchmarks it
# on this machine's CPU and compares it with BASELINE (a `compress bench --save` JSON). Exit status is the
# gate's: 0 passed, 1 significantly slower than FAIL_SLOWER (or larger, less accurate), 2 bad input.
# Without a BASELINE file one is saved first from this machine (commit it: a baseline means something only
# on the machine type that gates), then compared against, which passes.
#
# Settings (environment):
#   FAIL_SLOWER=10%        fail when significantly slower than the baseline by more than this
#   FAIL_LARGER=           fail when an artifact grew by more than this, e.g. 5% (empty: not checked)
#   MAX_ACCURACY_DROP=     fail when accuracy dropped by more points than this (empty: not checked)
#   TARGETS=onnx           export targets (compress --target)
#   EXPORT_ARGS=           more options for the export, e.g. "--quantize int8 --data images/"
#   BENCH_TARGETS=cpu      where to time them (compress bench --targets)
#   ONLY=                  settings to gate, e.g. onnxruntime-1t (compress bench --only; empty: all)
#   REPEATS=6              fresh processes per row (>= 5: the gate compares each side's best process)
#   BOUNDS=default         timing preset: quick, demo, default, thorough
#   OUT=latency-out        the export folder; bench.json, report.html and report.md are written there
#   SETUP=run              run scripts/setup.sh first; `browser` adds --browser (tfjs, onnx-web); `skip`
#   COMPRESS=              the compress command (default: the checkout's .venv/bin/compress, else `compress`)
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 MODEL BASELINE   (MODEL: a model file or demo; settings: see the script's header)" >&2
  exit 2
fi
model=$1 baseline=$2
checkout=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-latency-out}

case ${SETUP:-run} in
  run) bash "$checkout/scripts/setup.sh" ;;
  browser) bash "$checkout/scripts/setup.sh" --browser ;;
  skip) ;;
  *) echo "SETUP=${SETUP} is not run, browser or skip" >&2; exit 2 ;;
esac

if [[ -n "${COMPRESS:-}" ]]; then
  read -ra compress <<< "$COMPRESS"
elif [[ -x "$checkout/.venv/bin/compress" ]]; then
  compress=("$checkout/.venv/bin/compress")
else
  compress=(compress)
fi

read -ra export_args <<< "${EXPORT_ARGS:-}"
echo "latency-gate: exporting $model to $out (${TARGETS:-onnx})"
"${compress[@]}" "$model" --target "${TARGETS:-onnx}" "${export_args[@]}" --out "$out" --overwrite

bench=("${compress[@]}" bench "$out" --targets "${BENCH_TARGETS:-cpu}" --repeats "${REPEATS:-6}"
       --bounds "${BOUNDS:-default}")
[[ -z "${ONLY:-}" ]] || bench+=(--only "$ONLY")

if [[ ! -f "$baseline" ]]; then
  echo "latency-gate: no baseline $baseline yet: saving one from this machine (commit it to gate later runs)"
  "${bench[@]}" --save "$baseline"
fi

gate=(--compare "$baseline" --fail-slower "${FAIL_SLOWER:-10%}")
[[ -z "${FAIL_LARGER:-}" ]] || gate+=(--fail-larger "$FAIL_LARGER")
[[ -z "${MAX_ACCURACY_DROP:-}" ]] || gate+=(--max-accuracy-drop "$MAX_ACCURACY_DROP")
status=0
"${bench[@]}" "${gate[@]}" || status=$?
echo "latency-gate: report in $out/report.html (exit $status)"
exit "$status"
