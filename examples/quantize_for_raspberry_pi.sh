#!/usr/bin/env bash
# Quantize a zoo model for a Raspberry Pi 4, then check it against the raspberry-pi-4 device profile.
#
#   bash examples/quantize_for_raspberry_pi.sh                       # speech-emotion -> ./rpi4-speech-emotion
#   bash examples/quantize_for_raspberry_pi.sh face-expression out/  # another zoo model, another folder
#   VALIDATION=my_corpus/ bash examples/quantize_for_raspberry_pi.sh speech-emotion
#   bash examples/quantize_for_raspberry_pi.sh --smoke               # eeg-mental-state, fp32+int8, temp dir (CI)
#
# Step 1, `affectedge quantize`: exports the model to TFLite (the Pi's first runtime is LiteRT + XNNPACK),
# in fp32 and int8 (or `auto`: what fits), checks every artifact against the source on validation data
# (accuracy, top-1 agreement, error budgets) in every runtime installed, and writes report.md. An artifact
# that misses its budget is refused (no file), so what lands in the folder is safe to ship.
# Step 2, `affectedge profiles check`: size, memory, operator coverage of XNNPACK and an estimated latency
# on the Pi (an ESTIMATE from published throughput, measured here only on this host). Exit 0 = within the
# profile's hard budgets; warnings are printed but do not fail.
#
# Validation/calibration data: $VALIDATION if set, else quantize's default (the zoo model's training
# corpus under $AFFECTEDGE_DATA_DIR or ../shared/data; random inputs when there is none).
set -euo pipefail

PROFILE=raspberry-pi-4
SMOKE=0
if [[ "${1:-}" == "--smoke" ]]; then
    SMOKE=1
    shift
fi
command -v affectedge >/dev/null || { echo "error: 'affectedge' is not on PATH (pip install 'affectedge[export]')" >&2; exit 2; }

if [[ $SMOKE == 1 ]]; then
    MODEL=eeg-mental-state                     # the smallest zoo model (a few KiB): quantizes in seconds
    OUT=$(mktemp -d)/rpi4-$MODEL
    trap 'rm -rf "$(dirname "$OUT")"' EXIT     # never leave files behind in smoke mode
    HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    DATA=${AFFECTEDGE_DATA_DIR:-$HERE/../../shared/data}
    [[ -d "$DATA/eeg/muse_mentalstate" ]] && VALIDATION=${VALIDATION:-$DATA/eeg/muse_mentalstate}
    ARGS=(--precision fp32,int8 --validation-limit 100 --repeats 20)
else
    MODEL=${1:-speech-emotion}
    OUT=${2:-./rpi4-$MODEL}
    ARGS=(--precision auto)
fi
[[ -n "${VALIDATION:-}" ]] && ARGS+=(--validation "$VALIDATION" --calibration "$VALIDATION")

echo "== 1. quantize $MODEL for $PROFILE -> $OUT"
affectedge quantize "$MODEL" --to tflite --profile "$PROFILE" --out "$OUT" "${ARGS[@]}"

echo "== 2. check every artifact against the $PROFILE profile"
status=0
shopt -s nullglob
artifacts=("$OUT"/*.tflite)
[[ ${#artifacts[@]} -gt 0 ]] || { echo "error: quantize wrote no .tflite artifact in $OUT (see $OUT/report.md)" >&2; exit 1; }
for f in "${artifacts[@]}"; do
    echo "-- $(basename "$f")"
    # the full report is long; show the headline lines (drop the filter to see all of it)
    if out=$(affectedge profiles check "$f" --profile "$PROFILE" 2>/dev/null); then rc=0; else rc=$?; fi
    grep -E "^ +(file size|memory|target ESTIMATE|verdict|warning:)" <<<"$out" || echo "$out"
    [[ $rc == 0 ]] || status=$rc
done
if [[ $status == 0 ]]; then
    echo "all artifacts fit $PROFILE (report: $OUT/report.md)"
else
    echo "some artifact does not fit $PROFILE (exit $status)" >&2
fi
exit $status
