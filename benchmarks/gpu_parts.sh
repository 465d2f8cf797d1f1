#!/usr/bin/env bash
# The new parts on one GPU, in one call of under 10 minutes (issue 16's GPU results):
#   1. the four hypernetworks (hd, mlp, mixture, modulation) at equal wall-clock on the sphere
#      inrkit-v1 preset (PRESET=paper for the reference setups), SIREN width 256 and 1024, one seed: `inrkit compare --budget-minutes`
#      (HN_MIN minutes each, alone on the GPU, so the clock is fair);
#   2. then the three priors (gaussian, flow, diffusion) on sphere and on chairs (occupancy), each
#      with one frozen stage 1 (S1_STEPS steps) and stage 2 of PRIOR_STEPS steps per prior and
#      seed (2 seeds), on N_ITEMS built-in items (a tenth held out: the sample distances compare
#      as many samples with them): `inrkit compare --priors`. Sphere and chairs run at the same time, so their
#      items/s and sampling times are those of a shared GPU (parameters and distances are not).
# Each phase has a wall-clock cap (CAP1_S, CAP2_S); a capped hypernet comparison keeps its finished
# runs (benchmarks/compare_partial.py rebuilds the report from them). Small outputs (JSON,
# markdown, logs, configs, previews; never weights) go to $OUT/parts.tar.gz.
#
#   [HN_MIN=0.25] [S1_STEPS=400] [PRIOR_STEPS=200] [N_ITEMS=640] [CAP1_S=270] [CAP2_S=250] bash benchmarks/gpu_parts.sh OUT_DIR
#
# A CPU smoke test of the script itself: DEVICE=cpu PRESET=tiny PY=.venv/bin/python HN_MIN=0.02 S1_STEPS=2 PRIOR_STEPS=2
#   N_ITEMS=20 WIDTHS=8,16 bash benchmarks/gpu_parts.sh /tmp/parts-smoke
set -uo pipefail
py=${PY:-python3}
dev=${DEVICE:-cuda}
preset=${PRESET:-inrkit-v1}  # the measured sizes (paper: the faithful, heavier reference setups)
out=${1:?output dir}
work=$(mktemp -d /tmp/inrkit-parts-XXXX)
mkdir -p "$out"
quiet=(--set train.tensorboard=false --set train.progress=false --set train.sample_steps=10 --set train.n_renders=8)
t0=$(date +%s)

timeout "${CAP1_S:-270}" $py -m inrkit_cli.main compare --hypernets hd,mlp,mixture,modulation --modality sphere \
  --preset "$preset" --budget-minutes "${HN_MIN:-0.25}" --seeds 1 --sweep "inr.width=${WIDTHS:-256,1024}" --keep logs \
  --device "$dev" --out "$work/hypernets-sphere" "${quiet[@]}" > "$work/hypernets-sphere.log" 2>&1
echo "hypernets: exit $? after $(( $(date +%s) - t0 )) s"
[ -f "$work/hypernets-sphere/compare.json" ] || $py benchmarks/compare_partial.py "$work/hypernets-sphere" \
  "$work/hypernets-sphere-partial" >> "$work/hypernets-sphere.log" 2>&1

pids=()
for m in sphere occupancy; do
  timeout "${CAP2_S:-250}" $py -m inrkit_cli.main compare --priors gaussian,flow,diffusion --modality "$m" --preset "$preset" \
    --set "train.vae.steps=${S1_STEPS:-400}" --set "data.n_items=${N_ITEMS:-640}" --budget-steps "${PRIOR_STEPS:-200}" --seeds 2 --device "$dev" \
    --out "$work/priors-$m" "${quiet[@]}" > "$work/priors-$m.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; echo "priors: exit $? after $(( $(date +%s) - t0 )) s"; done

nvidia-smi --query-gpu=name,memory.total --format=csv > "$work/gpu.txt" 2>&1
for f in "$work"/*.log; do echo "== $f"; tail -25 "$f"; done
cd "$work" && tar czf "$out/parts.tar.gz" gpu.txt *.log \
  $(find . -mindepth 1 -maxdepth 4 \( -name '*.json' -o -name '*.jsonl' -o -name '*.md' -o -name config.yaml \
     -o -name '*.png' \) -size -3M)
ls -la "$out"
