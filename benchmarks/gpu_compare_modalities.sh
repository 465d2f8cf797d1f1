#!/usr/bin/env bash
# benchmarks/gpu_compare.py for several modalities at once on one GPU (MODALITIES, default
# "sphere occupancy"), each under a wall-clock cap (CAP_S): a capped comparison keeps the points
# it finished (their run records) and is completed later with `gpu_compare.py --resume --work`.
# The runs share the GPU, so items/s and decode times are lower than alone; parameters and peak
# memory are per process and unaffected. Small outputs go to $OUT/compare.tar.gz.
#
#   [MODALITIES=...] [CAP_S=470] bash benchmarks/gpu_compare_modalities.sh OUT_DIR [gpu_compare.py args]
set -uo pipefail
out=${1:?output dir}; shift
mods=${MODALITIES:-sphere occupancy}
work=$(mktemp -d /tmp/inrkit-compare-XXXX)
mkdir -p "$out" && out=$(cd "$out" && pwd)   # absolute: the packing below runs from the work folder
pids=()
for m in $mods; do
  timeout "${CAP_S:-470}" python3 benchmarks/gpu_compare.py --modality "$m" --out "$work/$m-out" --work "$work/$m" "$@" \
    > "$work/$m.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait $p; done
nvidia-smi --query-gpu=name,memory.total --format=csv > "$work/gpu.txt"
for m in $mods; do tail -40 "$work/$m.log"; done
cd "$work" && tar czf "$out/compare.tar.gz" gpu.txt *.log \
  $(find . -mindepth 2 -maxdepth 5 \( -name '*.json' -o -name '*.jsonl' -o -name '*.md' -o -name '*.png' -o -name config.yaml \) -size -3M)
ls -la "$out"
