#!/usr/bin/env bash
# Several LDMI training recipes at once on one GPU, each a full run (stage 1, stage 2, evaluate,
# 4x samples), to choose a recipe for a modality. Each line of RECIPES is
#   NAME MODALITY --set k=v ...
# and is added to the common wall-clock budgets below. Every run's log is written into OUT_DIR as
# it grows (NAME.log), every command stops DEADLINE_S (default 560) seconds after the start, keeping
# 20 s to pack, so a device call cut off at its limit still brings the logs back; small outputs
# (no weights) go to $OUT/recipes.tar.gz. Runs sharing a card run slower each: with many compiled
# runs the wall-clock caps, not the step counts, end their stages (benchmarks/README.md).
#
#   bash benchmarks/gpu_recipes.sh OUT_DIR RECIPES_FILE [VAE_MIN] [PRIOR_MIN] [PRESET]
set -uo pipefail
out=${1:?output dir}; recipes=${2:?recipes file}; vae_min=${3:-7}; prior_min=${4:-1}; preset=${5:-paper}
work=$(mktemp -d "${TMPDIR:-/tmp}/inrkit-recipes-XXXX")
mkdir -p "$out" && out=$(cd "$out" && pwd)   # absolute: the packing below runs from the work folder
start_s=$SECONDS
left() { echo $(( ${DEADLINE_S:-560} - 20 - (SECONDS - start_s) )); }
guard() { local t; t=$(left); (( t > 5 )) || { echo "deadline: skipped $1 $2" >&2; return 124; }; timeout -k 10 "$t" "$@"; }   # -k: a run still saving after SIGTERM is killed 10 s later
common=(--preset "$preset" --overwrite --set train.progress=false
        --set train.vae.max_minutes=$vae_min --set train.prior.max_minutes=$prior_min
        --set train.prior.lr=3e-4 --set train.prior.warmup=200 --set train.prior.lr_schedule=cosine
        --set train.checkpoint_every=0 --set train.sample_every=0 --set train.tensorboard=false)
declare -A fine=([sphere]=184 [occupancy]=128 [image]=256)
names=(); pids=()
while read -r name modality sets; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  names+=("$name")
  log="$out/$name.log"
  ( guard inrkit train ldmi --modality "$modality" --out "$work/$name" "${common[@]}" $sets > "$log" 2>&1
    echo "train exit $?" >> "$log"
    guard inrkit evaluate "$work/$name" >> "$log" 2>&1
    guard inrkit sample "$work/$name" --n 16 --seed 0 --out "$work/$name/samples/fine" --resolution ${fine[$modality]} >> "$log" 2>&1
    echo "done $name" >> "$log" ) &
  pids+=($!)
done < "$recipes"
for p in "${pids[@]}"; do wait $p; done
nvidia-smi --query-gpu=name,memory.total --format=csv > "$work/gpu.txt" 2>/dev/null || echo "no nvidia-smi here" > "$work/gpu.txt"
cp "$recipes" "$work/recipes.txt"
for n in "${names[@]}"; do echo "== $n"; tail -15 "$out/$n.log"; cp "$out/$n.log" "$work/"; done
cd "$work" && tar czf "$out/recipes.tar.gz" gpu.txt recipes.txt *.log \
  $(find "${names[@]}" -maxdepth 4 \( -name '*.json' -o -name '*.jsonl' -o -name '*.png' -o -name config.yaml \) -size -3M 2>/dev/null)
ls -la "$out"
