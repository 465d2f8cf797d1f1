#!/usr/bin/env bash
# Hypernetwork comparisons at equal wall-clock on one GPU, in one call of under 10 minutes (issue 11
# item 4, issue 16): every run of every comparison named starts at the same time, one process each
# (`inrkit compare --jobs <its run count>`), so all runs share the card alike for MINUTES minutes of
# training (`--budget-minutes`; the reports say how many ran at once). Optionally, beside them,
# `inrkit compare --priors gaussian,flow,diffusion` on the modalities in PRIORS (one frozen stage 1 of
# S1_STEPS steps, PRIOR_STEPS steps per prior and seed, on N_ITEMS items): step budgets, so sharing
# changes their speeds (recorded as those of a shared GPU), not their results.
#
#   [MINUTES=6] [SEEDS=2] [JOBS=<runs of a comparison>] [PRESET=inrkit-v1] [SETS='train.final_checkpoint=false ...'] [PRIORS=sphere,occupancy] [S1_STEPS=400] [PRIOR_STEPS=200] [N_ITEMS=640]
#     bash benchmarks/gpu_shared_compares.sh OUT MODALITY:HYPERNETS:WIDTHS ...
#   e.g. bash benchmarks/gpu_shared_compares.sh $OUT sphere:hd,mlp,mixture,modulation:256 sphere:hd,mlp,modulation:1024
#
# JOBS below a comparison's run count trains its runs in waves of JOBS (JOBS=1: one at a time, each
# run alone on the card, for parts too large to share it, e.g. mixture at sphere width 1024).
# Each comparison is capped at (MINUTES + CAP_EXTRA_S (default 200 s)) × its waves of wall time; a capped one keeps its finished
# runs (benchmarks/compare_partial.py writes its report). Small outputs (JSON, markdown, logs,
# configs, previews; never weights) go to OUT/shared-compares.tar.gz, the markdown reports also to OUT/summary.md.
# CPU smoke test: DEVICE=cpu PRESET=tiny PY=.venv/bin/python MINUTES=0.02 SEEDS=1 PRIORS=sphere S1_STEPS=2 PRIOR_STEPS=2 N_ITEMS=20
#   bash benchmarks/gpu_shared_compares.sh /tmp/shared-smoke sphere:hd,mlp:8
set -uo pipefail
py=${PY:-python3}
dev=${DEVICE:-cuda}
preset=${PRESET:-inrkit-v1}
seeds=${SEEDS:-2}  # a count (2: seeds 0,1) or a list as inrkit compare takes it (1, or 0,5,7)
minutes=${MINUTES:-6}
out=${1:?output dir}
shift
work=$(mktemp -d "${TMPDIR:-/tmp}/inrkit-shared-XXXX")  # run folders (weights too) stay here, not in OUT
mkdir -p "$out" && out=$(cd "$out" && pwd)   # absolute: the packing below runs from the work folder
quiet=(--set train.tensorboard=false --set train.progress=false --set train.sample_steps=10 --set train.n_renders=8)
for item in ${SETS:-}; do quiet+=(--set "$item"); done  # SETS="k=v k=v": more overrides for every run
count() { tr ',' '\n' <<< "$1" | grep -c .; }
case "$seeds" in *,*) n_seeds=$(count "$seeds") ;; *) n_seeds=$seeds ;; esac
cap_s() { awk -v m="$minutes" -v w="$1" -v e="${CAP_EXTRA_S:-200}" 'BEGIN { printf "%d", w * (m * 60 + e) }'; }  # $1 waves
t0=$(date +%s)
pids=() names=()
for spec in "$@"; do
  IFS=: read -r modality hypernets widths <<< "$spec"
  n=$(( $(count "$hypernets") * $(count "$widths") * n_seeds ))
  jobs=${JOBS:-$n}; jobs=$(( jobs < n ? jobs : n ))
  waves=$(( (n + jobs - 1) / jobs ))  # runs train in waves of JOBS; the cap allows every wave its budget
  name="$modality-${hypernets//,/-}-w${widths//,/-}"
  timeout "$(cap_s "$waves")" $py -m inrkit_cli.main compare --hypernets "$hypernets" --modality "$modality" --preset "$preset" \
    --budget-minutes "$minutes" --seeds "$seeds" --sweep "inr.width=$widths" --jobs "$jobs" --keep logs \
    --device "$dev" --out "$work/$name" "${quiet[@]}" > "$work/$name.log" 2>&1 &
  pids+=($!) names+=("$name")
done
for m in ${PRIORS//,/ }; do
  timeout "$(cap_s 1)" $py -m inrkit_cli.main compare --priors gaussian,flow,diffusion --modality "$m" --preset "$preset" \
    --set "train.vae.steps=${S1_STEPS:-400}" --set "data.n_items=${N_ITEMS:-640}" --budget-steps "${PRIOR_STEPS:-200}" \
    --seeds "$seeds" --device "$dev" --out "$work/priors-$m" "${quiet[@]}" > "$work/priors-$m.log" 2>&1 &
  pids+=($!) names+=("priors-$m")
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}"
  echo "${names[$i]}: exit $? after $(( $(date +%s) - t0 )) s"
done
for name in "${names[@]}"; do
  if [ ! -f "$work/$name/compare.json" ] && [ -f "$work/$name/compare_plan.json" ]; then
    $py benchmarks/compare_partial.py "$work/$name" >> "$work/$name.log" 2>&1
  fi
  for md in "$work/$name"/*.md; do [ -f "$md" ] && { echo "<!-- $name -->"; cat "$md"; echo; } >> "$out/summary.md"; done
done
nvidia-smi --query-gpu=name,memory.total --format=csv > "$work/gpu.txt" 2>&1
for f in "$work"/*.log; do echo "== $f"; tail -20 "$f"; done
cd "$work" && tar czf "$out/shared-compares.tar.gz" gpu.txt *.log \
  $(find . -mindepth 1 -maxdepth 4 \( -name '*.json' -o -name '*.jsonl' -o -name '*.md' -o -name config.yaml \
     -o -name '*.png' -o -name '*.log' \) -size -3M)
ls -la "$out"
