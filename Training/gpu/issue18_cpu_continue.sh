#!/bin/bash
# Issue 18, ct-organs-mob 2.1.0 on 2 CPU cores: the 2.0.0 schedule (issue18_cpu_runs.sh) continued. 2.0.0's backbone
# had 288 steps on A + B (final_det) and stayed unconfident (median top-class logit margin 5.9 nats in air on the
# bench volume), so the sparse sampler (uqseg.ct.mc_estimate) settled no voxel and the bench ratio was 2.0.
#   stage 1: final_det continued for 35 min on A + B (deterministic, lr 5e-4 cosine)         -> long_det
#   stage 2: the four stochastic covariance forms from long_det, the same fixed 300 steps and settings
#            (lr 1e-4 cosine, heads x10, 6 training samples, seed 0), two at a time          -> long_<form>
#   noise:   mixture-of-bases from long_det again with seed 1 (training noise of the comparison), beside the second
#            pair                                                                             -> long_mixture_of_bases_seed1
# (--fit-minutes 35 set 2345 steps from the speed of the first 30.) The leave-one-patient-out runs were NOT
# continued (2 x 2345 more steps did not fit the session on 2 shared cores): the card's LOPO numbers are those of
# issue18_cpu_runs.sh's shorter schedule.
# Usage: bash Training/gpu/issue18_cpu_continue.sh CACHE RUNS_2_0_0 RUNS
#   (RUNS_2_0_0: the folder issue18_cpu_runs.sh wrote, for final_det)
set -u
CACHE=$1; I=$2; R=$3
mkdir -p $R
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
PY=${PY:-.venv/bin/python}
C="--cache $CACHE --organs liver,spleen,kidney_left,kidney_right,pancreas --filters 8 16 32 64 --rank 24 --bases 3 --block 4 --scanner-aug --threads 1 --batch 2 --patch 12 96 96 --eval-every 100000 --train-cases A,B --val-slab A:14:20 --val-slab B:126:141"
$PY Training/train_ct.py $C --steps 5000 --form deterministic --lr 5e-4 --init $I/final_det/weights.safetensors \
  --fit-minutes 35 --out $R/long_det > $R/long_det.log 2>&1
S="--lr 1e-4 --head-lr-factor 10 --train-samples 6 --steps 300 --init $R/long_det/weights.safetensors"
$PY Training/train_ct.py $C $S --form mixture_of_bases --out $R/long_mixture_of_bases > $R/long_mixture_of_bases.log 2>&1 &
$PY Training/train_ct.py $C $S --form diagonal --out $R/long_diagonal > $R/long_diagonal.log 2>&1
wait
$PY Training/train_ct.py $C $S --form lowrank --out $R/long_lowrank > $R/long_lowrank.log 2>&1 &
$PY Training/train_ct.py $C $S --form mixture_of_bases --seed 1 --out $R/long_mixture_of_bases_seed1 \
  > $R/long_mixture_of_bases_seed1.log 2>&1 &
$PY Training/train_ct.py $C $S --form single_basis --out $R/long_single_basis > $R/long_single_basis.log 2>&1
wait
