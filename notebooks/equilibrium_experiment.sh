#!/bin/sh
# The runs read by equilibrium_experiment.ipynb (each command resumes: finished runs in the JSON are skipped).
# Every JSON file also stores the commands that added runs to it and the accumulated wall time.
set -e
cd "$(dirname "$0")"
meanfield experiment equilibrium --preset paper --dataset digits --runs 5 --depths 10,20,30,40,50,60,70,80,90 --workers 3 --out data/eh-digits.json
meanfield experiment equilibrium --preset paper --dataset digits --runs 5 --depths 100 --workers 2 --out data/eh-digits.json
meanfield experiment lr-sweep --preset paper --dataset digits --depths 10,20,40,60,80,100 --runs 1 --workers 2 --out data/eh-digits-sweep.json
meanfield experiment equilibrium --preset paper --dataset digits --runs 5 --depths 10,20,40,60,80,100 --learning-rates-from data/eh-digits-sweep.json --workers 2 --out data/eh-digits-swept.json
meanfield experiment equilibrium --preset paper --dataset digits --runs 5 --depths 10,20,30,40 --lr-scale 0.25 --out data/eh-digits-lr4.json
meanfield experiment equilibrium --preset paper --dataset digits --runs 5 --depths 10,20,30,40,50 --residual '1/sqrt(L)' --out data/eh-digits-res-isqrt.json
meanfield experiment equilibrium --preset paper --dataset digits --runs 5 --depths 10,20,30 --residual 1 --out data/eh-digits-res-1.json
meanfield experiment equilibrium --preset paper --dataset mnist1d --runs 5 --depths 10,20,30 --out data/eh-mnist1d.json
meanfield experiment equilibrium --preset paper --dataset mnist1d --runs 5 --depths 40,50,60 --workers 2 --out data/eh-mnist1d.json
meanfield experiment equilibrium --preset paper --dataset digits --runs 5 --depths 10,20 --no-stop --out data/eh-digits-nostop.json
