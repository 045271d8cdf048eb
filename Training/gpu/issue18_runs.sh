#!/bin/bash
# Issue 18 training runs on one GPU machine (16 CPU cores, one H200), all in one call of a fixed time budget:
#   stage 1 (deterministic backbone) for AtoB (train A, test B), BtoA (train B, test A) and final (train A+B,
#   validation slabs A:14:20 and B:126:141) concurrently; then stage 2, the five covariance forms from each backbone
#   (15 runs concurrently, the same budget each); then evaluate_ct_lopo.py for every stage-2 run (OOD fitted on the
#   run's own training patients); then one timing of a 128^3 volume with k = 30 and the OOD map.
# Usage (from a folder holding src/ = UQSegmentation/uqseg + Training, data/ = cache_ct_cases.py output, whl/):
#   bash src/Training/gpu/issue18_runs.sh OUTDIR STAGE1_MIN STAGE2_MIN DEVICE [PATCH_Z PATCH_YX FILTERS...]
# The same script runs on the CPU with tiny budgets as its smoke test (DEVICE=cpu).
set -u
OUTDIR=$1; M1=$2; M2=$3; DEV=$4; PZ=${5:-16}; PYX=${6:-128}; shift 6 2>/dev/null || shift $#
FILTERS=${*:-16 32 64 128}
HERE=$(pwd); DATA=${DATA:-$HERE/data}; SLAB_A=${SLAB_A:-14:20}; SLAB_B=${SLAB_B:-126:141}
export PYTHONPATH=${PYTHONPATH:-}:$HERE/src/UQSegmentation:$HERE/src/Training PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
R=/tmp/runs18; rm -rf $R; mkdir -p $R
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
ORG=liver,spleen,kidney_left,kidney_right,pancreas
AUG=""; [ "$DEV" != cpu ] && AUG="--aug-device $DEV"
COMMON="--cache $DATA --organs $ORG --filters $FILTERS --rank 24 --bases 3 --block 4 --scanner-aug --device $DEV $AUG --threads 1 --batch 4 --patch $PZ $PYX $PYX --eval-every 100000"
declare -A SPLIT=( [AtoB]="--train-cases A --val-cases B" [BtoA]="--train-cases B --val-cases A"
                   [final]="--train-cases A,B --val-slab A:$SLAB_A --val-slab B:$SLAB_B" )
pack() { tar czf $OUTDIR/runs.tar.gz --exclude='*.safetensors' -C /tmp runs18; }
stamp "stage 1"
for s in AtoB BtoA final; do
  python3 src/Training/train_ct.py $COMMON ${SPLIT[$s]} --form deterministic --steps 20000 --lr 1e-3 \
    --fit-minutes $M1 --out $R/${s}_det > $R/${s}_det.log 2>&1 &
done
wait; stamp "stage 1 done"; tail -n 2 $R/*_det.log; pack
for s in AtoB BtoA final; do
  for f in deterministic diagonal lowrank single_basis mixture_of_bases; do
    python3 src/Training/train_ct.py $COMMON ${SPLIT[$s]} --form $f --init $R/${s}_det/weights.safetensors \
      --steps 20000 --lr 1e-4 --head-lr-factor 10 --train-samples 10 --fit-minutes $M2 --out $R/${s}_$f > $R/${s}_$f.log 2>&1 &
  done
done
wait; stamp "stage 2 done"; tail -qn 1 $R/*_*.log | cut -c1-400; pack
SAMPLES=30; [ "$DEV" = cpu ] && SAMPLES=2
for s in AtoB BtoA final; do
  for f in deterministic diagonal lowrank single_basis mixture_of_bases; do
    timeout 110 python3 src/Training/evaluate_ct_lopo.py --run $R/${s}_$f --cache $DATA --out $R/eval_${s}_$f \
      --device $DEV --threads 1 --samples $SAMPLES > $R/eval_${s}_$f.log 2>&1 &
  done
done
wait; stamp "evaluation done"; cat $R/eval_*.log | cut -c1-600; pack
for s in AtoB BtoA final; do
  mkdir -p $R/w_$s; cp $R/${s}_mixture_of_bases/weights.safetensors $R/${s}_mixture_of_bases/config.json $R/w_$s/
  cp $R/eval_${s}_mixture_of_bases/ood.safetensors $R/w_$s/ 2>/dev/null
  tar cf $OUTDIR/w_$s.tar -C $R w_$s
done
stamp "timing"
timeout 60 python3 src/Training/time_ct_gpu.py --run $R/final_mixture_of_bases --cache $DATA \
  --ood $R/eval_final_mixture_of_bases/ood.safetensors --device $DEV --repeats $([ "$DEV" = cpu ] && echo 1 || echo 5) \
  --samples 30 --out $OUTDIR/timing.json
stamp "all done"; pack
