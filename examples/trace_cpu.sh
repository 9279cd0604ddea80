#!/usr/bin/env bash
# The TRACE comparison on a CPU, end to end: choose each method's learning rate on the eval splits,
# run LoSiA, LoRA and full fine-tuning under three paired seeds with those rates, and write the report.
#
#   examples/trace_cpu.sh /path/to/TRACE [OUT] [extra options for both commands...]
#
# The TRACE folder holds <Task>/{train,eval,test}.json (or set LOSIA_CL_DATA and pass ""); OUT defaults to
# runs/trace-cpu.  Extra options (e.g. --device cuda) go to both `tune` and `run`, after the preset, so they win.
set -euo pipefail

DATA="${1:-${LOSIA_CL_DATA:-}}"
if [ -z "$DATA" ]; then
    echo "usage: $0 /path/to/TRACE [OUT] [options...]  (or set LOSIA_CL_DATA)" >&2
    exit 2
fi
OUT="${2:-runs/trace-cpu}"
shift $(( $# < 2 ? $# : 2 ))

losia-cl tune --preset trace-cpu --data-dir "$DATA" --out "$OUT/tune" "$@"
losia-cl run --preset trace-cpu --data-dir "$DATA" --lr-from "$OUT/tune/tune.json" --out "$OUT/run" "$@"
losia-cl report "$OUT/run"
