#!/usr/bin/env bash
# 4-fold cross-validation of one mammo-pectoral training setting on the 40 training images (issue 19): per fold the
# shipped two-stage recipe (60 epochs at lr 1e-3 from scratch, then 60 at 5e-4 from stage 1) on 30 images, then the
# full inference pipeline on the 10 held out (evaluate_pectoral.py --folds 4 --fold i), without and with test-time
# augmentation. One thread per run, so two settings run side by side on two cores (~60 min for both on this
# project's 2-core machine, with other work beside them).
#
#   bash Training/pectoral_cv.sh standard runs/pcv    # and, beside it:  bash Training/pectoral_cv.sh strong runs/pcv
#   python Training/pectoral_cv_summary.py runs/pcv   # the pooled held-out numbers per setting
set -euo pipefail
setting=${1:?augmentation setting: standard or strong}
root=$(realpath -m "${2:?output folder}")
cd "$(dirname "$0")"
export PYTHONPATH=../UQSegmentation${PYTHONPATH:+:$PYTHONPATH}
py=${PYTHON:-python}
for fold in 0 1 2 3; do
  run=$root/${setting}_f$fold
  [ -f "$run/s2/weights.safetensors" ] || {
    $py train_pectoral.py --out "$run/s1" --augment "$setting" --folds 4 --fold $fold --threads 1 --epochs 60 \
      --loss nll_laplace --js-weight 10 > "$run.s1.log" 2>&1
    $py train_pectoral.py --out "$run/s2" --augment "$setting" --folds 4 --fold $fold --threads 1 --epochs 60 \
      --lr 5e-4 --init "$run/s1/weights.safetensors" --loss nll_laplace --js-weight 10 > "$run.s2.log" 2>&1
  }
  [ -f "$run/eval/evaluation.json" ] || $py evaluate_pectoral.py --weights "$run/s2/weights.safetensors" \
      --folds 4 --fold $fold --no-dose --out "$run/eval" > "$run.eval.log" 2>&1
  # the same fold with test-time augmentation (three intensity gammas): its cost is three network passes
  [ -f "$run/eval_tta/evaluation.json" ] || $py evaluate_pectoral.py --weights "$run/s2/weights.safetensors" \
      --folds 4 --fold $fold --no-dose --tta-gammas 0.8,1,1.25 --out "$run/eval_tta" > "$run.eval_tta.log" 2>&1
done
