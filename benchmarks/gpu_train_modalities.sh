#!/usr/bin/env bash
# Real LDMI training runs on one GPU for the three built-in datasets at the paper presets,
# all three at once (the models are small: one run does not fill an H100/H200).
# Each stage has a wall-clock budget; the optimiser schedule is shortened to match (lr 3e-4,
# 200 warm-up steps, cosine decay over the steps the budget is expected to reach).
# Results (summary/eval JSON, metrics, sample and reconstruction PNGs) go to $OUT/train.tar.gz.
#
#   [MODALITIES="sphere occupancy image"] bash benchmarks/gpu_train_modalities.sh OUT_DIR [VAE_MIN] [PRIOR_MIN] [PRESET]
set -uo pipefail
out=${1:?output dir}; vae_min=${2:-5}; prior_min=${3:-1.5}; preset=${4:-paper}
mods=${MODALITIES:-sphere occupancy image}
work=$(mktemp -d /tmp/inrkit-train-XXXX)
mkdir -p "$out" && out=$(cd "$out" && pwd)   # absolute: the packing below runs from the work folder
common=(--preset "$preset" --overwrite --set train.progress=false
        --set train.vae.lr=3e-4 --set train.vae.warmup=200 --set train.vae.lr_schedule=cosine
        --set train.prior.lr=3e-4 --set train.prior.warmup=200 --set train.prior.lr_schedule=cosine
        --set train.vae.max_minutes=$vae_min --set train.prior.max_minutes=$prior_min
        --set train.checkpoint_every=0 --set train.sample_every=0)
declare -A extra=(
  [sphere]="--set data.n_items=2048 --set train.vae.steps=4000 --set train.prior.steps=2000"
  [occupancy]="--set data.n_items=2048 --set train.vae.steps=4000 --set train.prior.steps=2000"
  [image]="--set train.vae.steps=4000 --set train.prior.steps=2000"
)
declare -A fine=([sphere]=184 [occupancy]=128 [image]=256)
pids=()
for m in $mods; do
  ( inrkit train ldmi --modality $m --out "$work/$m" "${common[@]}" ${extra[$m]} > "$work/$m.log" 2>&1
    echo "train exit $?" >> "$work/$m.log"
    inrkit evaluate "$work/$m" >> "$work/$m.log" 2>&1
    inrkit sample "$work/$m" --n 16 --seed 0 --out "$work/$m/samples/fine" --resolution ${fine[$m]} >> "$work/$m.log" 2>&1
    echo "done $m" >> "$work/$m.log" ) &
  pids+=($!)
done
for p in "${pids[@]}"; do wait $p; done
nvidia-smi --query-gpu=name,memory.total --format=csv > "$work/gpu.txt"
for m in $mods; do tail -25 "$work/$m.log"; done
# keep small files only: no weights, no checkpoints, no meshes of the fine samples
cd "$work" && tar czf "$out/train.tar.gz" gpu.txt *.log \
  $(find $mods -maxdepth 4 \( -name '*.json' -o -name '*.jsonl' -o -name '*.png' -o -name config.yaml \) -size -3M)
ls -la "$out"
