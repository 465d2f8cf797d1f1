#!/usr/bin/env bash
# One LDMI training run that spends a wall-clock budget well: a 300-step probe measures the
# GPU's items/s, then stage 1's step count (and so its cosine schedule) is set to what the
# budget reaches, so the learning rate has decayed when the time is up (PROBE_STEPS=N for another
# probe length; with train.compile the probe's first step pays the compile time, and the stage's
# wall-clock cap, VAE_MIN x 1.1 unless VAE_CAP_MIN is given, counts it too). Then stage 2, evaluate
# and 4x samples. Small outputs (no weights) go to $OUT/run.tar.gz. The logs are written into
# OUT_DIR as they grow, and every command stops DEADLINE_S (default 560) seconds after the start,
# keeping 20 s to pack what exists: a device call cut off at its limit still brings its logs back.
# VAE_STEPS=N skips the probe (a step count measured before) and gives stage 1 N steps.
#
#   [PRESET=paper] bash benchmarks/gpu_budget_run.sh OUT_DIR MODALITY VAE_MIN PRIOR_MIN [--set k=v ...]
set -uo pipefail
out=${1:?output dir}; modality=${2:?modality}; vae_min=${3:?}; prior_min=${4:?}; shift 4
sets=("$@")
work=$(mktemp -d "${TMPDIR:-/tmp}/inrkit-budget-XXXX")
mkdir -p "$out" && out=$(cd "$out" && pwd)   # absolute: the packing below runs from the work folder
start_s=$SECONDS
left() { echo $(( ${DEADLINE_S:-560} - 20 - (SECONDS - start_s) )); }
guard() { local t; t=$(left); (( t > 5 )) || { echo "deadline: skipped $2" >&2; return 124; }; timeout -k 10 "$t" "$@"; }   # -k: a run still saving after SIGTERM is killed 10 s later
declare -A fine=([sphere]=184 [occupancy]=128 [image]=256)
common=(--modality "$modality" --preset "${PRESET:-paper}" --overwrite --set train.progress=false --set train.tensorboard=false
        --set train.checkpoint_every=0 --set train.sample_every=0 "${sets[@]}")
if [[ -n "${VAE_STEPS:-}" ]]; then  # a step count known from an earlier probe: no probe
  steps=$VAE_STEPS
  echo "given: stage 1 gets $steps steps in $vae_min min" | tee "$work/plan.txt"
else
guard inrkit train ldmi "${common[@]}" --out "$work/probe" --stage vae --set train.vae.steps=${PROBE_STEPS:-300} \
  --set train.log_every=$(( ${PROBE_STEPS:-300} / 6 )) > "$out/probe.log" 2>&1 || { cat "$out/probe.log"; exit 1; }
steps=$(python3 - "$work/probe" "$vae_min" <<'PY'
import json, sys
from pathlib import Path
run, minutes = Path(sys.argv[1]), float(sys.argv[2])
rows = [json.loads(l) for l in open(run / "metrics.jsonl") if '"items_per_s"' in l]
import yaml
batch = yaml.safe_load((run / "config.yaml").read_text())["train"]["vae"]["batch_size"]
rate = sum(r["items_per_s"] for r in rows[-3:]) / len(rows[-3:])
print(int(rate / batch * minutes * 60 * 0.95))
PY
)
echo "probe: stage 1 gets $steps steps in $vae_min min" | tee "$work/plan.txt"
fi
guard inrkit train ldmi "${common[@]}" --out "$work/run" --set train.vae.steps=$steps \
  --set train.vae.max_minutes=${VAE_CAP_MIN:-$(python3 -c "print($vae_min * 1.1)")} --set train.prior.max_minutes=$prior_min \
  > "$out/run.log" 2>&1
echo "train exit $?" >> "$out/run.log"
guard inrkit evaluate "$work/run" >> "$out/run.log" 2>&1
guard inrkit sample "$work/run" --n 16 --seed 0 --out "$work/run/samples/fine" --resolution ${fine[$modality]} >> "$out/run.log" 2>&1
nvidia-smi --query-gpu=name,memory.total --format=csv > "$work/gpu.txt"
tail -30 "$out/run.log"
cp "$out/run.log" "$work/"; [[ -f "$out/probe.log" ]] && cp "$out/probe.log" "$work/"
cd "$work" && tar czf "$out/run.tar.gz" gpu.txt plan.txt $(ls probe.log 2>/dev/null) run.log \
  $(find run -maxdepth 4 \( -name '*.json' -o -name '*.jsonl' -o -name '*.png' -o -name config.yaml \) -size -3M)
ls -la "$out"
