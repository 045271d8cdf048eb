#!/usr/bin/env bash
# K-fold cross-validation of the shipped mammo-breast recipe (mammo-breast-mcd 2.0.0: width 16, three stages of
# 15 + 30 + 30 epochs at lr 3e-3, 1.5e-3, 1e-3, each from the previous stage's final weights) on the 40 training
# images (issue 19): per fold the recipe on the training images minus the fold, then the full inference pipeline
# (N = 20 MC samples) on the held-out images (evaluate_breast.py --split fold). The validation split is not used.
# One thread per run; give the folds to run as further arguments to run them in separate processes side by side.
#
#   bash Training/breast_cv.sh 2 runs/bcv 0 &  bash Training/breast_cv.sh 2 runs/bcv 1 &  wait
#   python Training/breast_cv_summary.py runs/bcv --folds 2
set -euo pipefail
folds=${1:?number of folds}
root=$(realpath -m "${2:?output folder}")
shift 2
cd "$(dirname "$0")"
export PYTHONPATH=../UQSegmentation${PYTHONPATH:+:$PYTHONPATH}
py=${PYTHON:-python}
mkdir -p "$root"
todo=("$@")
[ ${#todo[@]} -gt 0 ] || todo=($(seq 0 $((folds - 1))))
for fold in "${todo[@]}"; do
  run=$root/f$fold
  prev=""
  for stage in "1 15 3e-3" "2 30 1.5e-3" "3 30 1e-3"; do
    set -- $stage
    [ -f "$run/s$1/weights.safetensors" ] || $py train_breast.py --out "$run/s$1" --width 16 --epochs $2 --lr $3 \
        --threads 1 --folds "$folds" --fold "$fold" ${prev:+--init "$prev"} > "$run.s$1.log" 2>&1
    prev=$run/s$1/weights.safetensors
  done
  [ -f "$run/eval/evaluation.json" ] || $py evaluate_breast.py --weights "$prev" --width 16 --threads 1 \
      --split fold --folds "$folds" --fold "$fold" --out "$run/eval" > "$run.eval.log" 2>&1
done
