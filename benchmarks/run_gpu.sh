#!/usr/bin/env bash
# The course on a GPU machine, measured in one go: every chapter in the full profile from
# an empty model cache (device chosen automatically), with the whole host and then pinned
# to 2 CPU cores (chapters-cuda-2-cores.json), then the benchmarks, each written as
# benchmarks/results/NAME-cuda.json (or into RESULTS_DIR).
#
#   benchmarks/run_gpu.sh [RESULTS_DIR]
#   DRY_RUN=1 benchmarks/run_gpu.sh /tmp/out    # the same steps, smoke profile and --quick,
#                                                # on whatever device is here (a rehearsal)
#
# For a machine with no network: wheels of the packages it lacks may wait in .whl/ (or
# WHEELS; they are installed into a private folder, nothing system-wide), and the corpus
# zip in the folder ATTNLAB_DATA_DIR names. Each step has a time limit, so that one slow step
# cannot take the others' time (TOTAL_LIMIT bounds them all); each writes its results as
# soon as it has them.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-benchmarks/results}
mkdir -p "$RESULTS"
BUILD=${ATTNLAB_BENCH_BUILD:-/tmp/attnlab-gpu-build}
rm -rf "$BUILD"

WHEELS=${WHEELS:-.whl}
if compgen -G "$WHEELS/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/attnlab-site "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=/tmp/attnlab-site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/code:${PYTHONPATH:-}      # attnlab itself, for the kernels too
export PYTHONUNBUFFERED=1
unset ATTNLAB_DEVICE ATTNLAB_PROFILE            # the chapters must find the GPU themselves

python3 - <<'EOF' || exit 1
import torch, attnlab, nbclient, ipykernel, ipywidgets
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
print("attnlab", attnlab.__version__, "nbclient", nbclient.__version__, "ipykernel", ipykernel.__version__,
      "ipywidgets", ipywidgets.__version__)
EOF
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,temperature.gpu --format=csv || true

start=$SECONDS
step() {   # step SECONDS NAME COMMAND...: run with a time limit, say how long it took
    local limit=$1 name=$2; shift 2
    local t0=$SECONDS left=$(( ${TOTAL_LIMIT:-100000} - (SECONDS - start) ))
    (( left < limit )) && limit=$left      # TOTAL_LIMIT: seconds for all the steps together
    (( limit < 10 )) && { echo "== $name: skipped, no time left"; return; }
    timeout --signal=INT --kill-after=10 "$limit" "$@"
    echo "== $name: exit $?, $((SECONDS - t0)) s (all: $((SECONDS - start)) s)"
}
PROFILE=full QUICK=()
[ -n "${DRY_RUN:-}" ] && PROFILE=smoke QUICK=(--quick)
step "${CHAPTERS_LIMIT:-500}" chapters python3 benchmarks/bench_chapters.py --profiles $PROFILE \
    --passes cold --keep-going --build-dir "$BUILD" --output "$RESULTS/chapters-cuda.json"
# Again from an empty cache, pinned to 2 CPU cores: the stand-in for Colab's 2-core host.
rm -rf "$BUILD"
step "${CHAPTERS_2CORES_LIMIT:-500}" chapters-2-cores taskset -c 0,1 python3 \
    benchmarks/bench_chapters.py --profiles $PROFILE --passes cold --keep-going \
    --build-dir "$BUILD" --output "$RESULTS/chapters-cuda-2-cores.json"
for name in steps:60 peak:45 decoding:45 torch:45 d2l:60 distributed:90; do
    step "${name#*:}" "${name%:*}" python3 "benchmarks/bench_${name%:*}.py" "${QUICK[@]}" \
        --output "$RESULTS/${name%:*}-cuda.json"
done
echo "== all steps: $((SECONDS - start)) s"
