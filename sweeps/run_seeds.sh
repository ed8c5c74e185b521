#!/usr/bin/env bash
# The seed sweeps of the chapters: each chapter at its book profile (the notebook's defaults) over seeds 0-3, one
# papermill run per seed on Dask, published to sweeps/results/<chapter>-seeds/ (the ledger's n/N and the chapters'
# seed sections read them). Usage: sweeps/run_seeds.sh [WORKERS] [CHAPTERS]  (from the repository root; needs the
# MNIST and Fashion-MNIST files, and Omniglot's small background splits for the VIMAE chapter). On a 2-core CPU,
# WORKERS=1 gives each run both cores; a run that stops is recorded, the others go on, and repeating the command
# resumes (SCRATCH, default _build/sweeps, keeps the finished runs).
set -euo pipefail
workers=${1:-1}
chapters=${2:-"vae_basics infovae vmim variance_loss vimae"}
py=${PYTHON:-python}
scratch=${SCRATCH:-_build/sweeps}
mkdir -p "$scratch"
for ch in $chapters; do
  name="${ch//_/-}-seeds"
  $py -m vaemi.sweep "$ch" --grid seed=0..3 --workers "$workers" --out "$scratch/$name" --no-progress \
      --publish "sweeps/results/$name" --note "seeds 0-3, book profile: the n/N of every verdict"
done
