#!/bin/bash
# Issue 18 on 2 CPU cores (the GPU machine was not lent: "no new device machine is lent at present"), same recipe as
# issue18_runs.sh with a smaller schedule and the mixture-of-bases form only:
#   phase 1 (parallel): AtoB_det from the shipped ct-organs-mob 1.1.0 backbone (trained on patient A only) on A;
#                       BtoA_det from scratch on B
#   phase 2 (parallel): final_det from BtoA_det on A + B (validation slabs A:14:20, B:126:141);
#                       AtoB_mixture_of_bases, BtoA_mixture_of_bases (stage 2 from their backbones)
#   phase 3:            final_mixture_of_bases from final_det
# Usage: bash Training/gpu/issue18_cpu_runs.sh CACHE RUNS M1 M2 M3   (minutes per phase)
set -u
CACHE=$1; R=$2; M1=$3; M2=$4; M3=$5
mkdir -p $R
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
PY=${PY:-.venv/bin/python}
ORG=liver,spleen,kidney_left,kidney_right,pancreas
C="--cache $CACHE --organs $ORG --filters 8 16 32 64 --rank 24 --bases 3 --block 4 --scanner-aug --threads 1 --batch 2 --patch 12 96 96 --eval-every 100000 --steps 5000"
A="--train-cases A --val-cases B"; B="--train-cases B --val-cases A"; F="--train-cases A,B --val-slab A:14:20 --val-slab B:126:141"
T0=$(date +%s); stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
stamp phase 1
$PY Training/train_ct.py $C $A --form deterministic --lr 5e-4 --init Resources/Models/ct-organs-mob/weights.safetensors \
  --fit-minutes $M1 --out $R/AtoB_det > $R/AtoB_det.log 2>&1 &
$PY Training/train_ct.py $C $B --form deterministic --lr 1e-3 --fit-minutes $M1 --out $R/BtoA_det > $R/BtoA_det.log 2>&1 &
wait; stamp phase 2
$PY Training/train_ct.py $C $F --form deterministic --lr 5e-4 --init $R/BtoA_det/weights.safetensors \
  --fit-minutes $M2 --out $R/final_det > $R/final_det.log 2>&1 &
for s in AtoB BtoA; do
  X=$A; [ $s = BtoA ] && X=$B
  $PY Training/train_ct.py $C $X --form mixture_of_bases --lr 1e-4 --head-lr-factor 10 --train-samples 6 \
    --init $R/${s}_det/weights.safetensors --fit-minutes $M2 --out $R/${s}_mixture_of_bases > $R/${s}_mixture_of_bases.log 2>&1 &
done
wait; stamp phase 3
$PY Training/train_ct.py $C $F --form mixture_of_bases --lr 1e-4 --head-lr-factor 10 --train-samples 6 \
  --init $R/final_det/weights.safetensors --fit-minutes $M3 --out $R/final_mixture_of_bases > $R/final_mixture_of_bases.log 2>&1
stamp done
