#!/usr/bin/env bash
# The ablations behind "why the numbers differ" in book/vmim.ipynb and book/infovae.ipynb.
# Usage: sweeps/run_ablations.sh vmim|infovae [WORKERS] [NAMES]   (from the repository root; needs the MNIST
# files). NAMES, e.g. "vmim-arch vmim-zdim", runs only those sweeps.
# Each sweep changes one factor from the base profile (profiles/ablation/*.yaml), over seeds, and publishes its
# small, path-free record to sweeps/results/<name>/ (the chapters read it from there). Runs that finished are
# skipped when the command is repeated with the same scratch folder (SCRATCH, default _build/sweeps).
# PARALLEL=1 runs the chosen sweeps at the same time (each with WORKERS processes; on a GPU machine with many
# cores, WORKERS = cores gives every run one thread). "sweeps/run_ablations.sh publish" publishes what an
# interrupted command finished (every scratch sweep with at least one finished run).
set -euo pipefail
which=${1:?usage: sweeps/run_ablations.sh vmim|infovae [WORKERS] [NAMES]}
workers=${2:-$(nproc)}
only=" ${3:-} "
py=${PYTHON:-python}
scratch=${SCRATCH:-_build/sweeps}
sweep() {  # NAME NOTEBOOK ARGS...
  local name=$1 nb=$2; shift 2
  if [[ "$only" != "  " && "$only" != *" $name "* ]]; then return 0; fi
  local cmd=($py -m vaemi.sweep "$nb" "$@" --workers "$workers" --out "$scratch/$name"
             --publish "sweeps/results/$name" --no-progress --note "ablation $name")
  if [[ "${PARALLEL:-0}" == 1 ]]; then "${cmd[@]}" > "$scratch/$name.log" 2>&1 & else "${cmd[@]}"; fi
}
mkdir -p "$scratch"
case $which in
  vmim)
    nb=sweeps/vmim_clustering.ipynb; base="-f profiles/ablation/vmim_clustering.yaml"
    sweep vmim-base      $nb $base --grid lam=0,5 --grid seed=0..4
    sweep vmim-lam       $nb $base --grid lam=1,20 --grid seed=0..2
    sweep vmim-thesis    $nb $base -p entropy=prior --grid lam=5 --grid seed=0..2
    sweep vmim-prior     $nb $base -p code_source=prior -p entropy=prior --grid lam=5 --grid seed=0..2
    sweep vmim-arch      $nb $base -p arch=conv --grid lam=5 --grid seed=0..2
    sweep vmim-zdim      $nb $base --grid z_dim=2,4 --grid seed=0..2
    sweep vmim-anneal    $nb $base -p temperature=1.0 -p temperature_min=0.5 --grid anneal_rate=0.0003 --grid seed=0..2
    sweep vmim-epochs    $nb $base --grid epochs=16 --grid seed=0..2
    # the two factors that helped (annealed temperature, a longer schedule) together, with either network
    sweep vmim-best      $nb $base -p temperature=1.0 -p temperature_min=0.5 -p anneal_rate=0.0003 -p epochs=16 \
                         --grid arch=mlp,conv --grid seed=0..3
    # its conv half again, alone (in the first run of vmim-best the GPU time ran out before the conv runs finished)
    sweep vmim-best-conv $nb $base -p temperature=1.0 -p temperature_min=0.5 -p anneal_rate=0.0003 -p epochs=16 \
                         -p arch=conv --grid seed=0..3
    ;;
  infovae)
    nb=sweeps/infovae_exp2.ipynb; base="-f profiles/ablation/infovae_exp2.yaml"
    sweep infovae-lam    $nb $base --grid lam=0,1,3,10 --grid seed=0..2
    sweep infovae-xtilde $nb $base --grid x_tilde=mean,straight_through --grid seed=0..2
    sweep infovae-share  $nb $base --grid mi_dim=15,18 --grid seed=0..2
    sweep infovae-share0 $nb $base -p lam=0 --grid mi_dim=15,18 --grid seed=0..2  # the plain VAE, same split
    sweep infovae-epochs $nb $base --grid epochs=20 --grid lam=1 --grid seed=0..2
    ;;
  publish)
    for d in "$scratch"/*/; do
      name=$(basename "$d")
      [[ -f "$d/manifest.json" ]] || continue
      if grep -qs "^\[sweep\] published" "$scratch/$name.log"; then continue; fi  # it finished and published
      $py -c "import sys; from vaemi.sweep import publish; print(publish(sys.argv[1], sys.argv[2], note=sys.argv[3]))" \
          "$d" "sweeps/results/$name" "ablation $name (interrupted: finished runs only)" || true
    done
    ;;
  *) echo "usage: sweeps/run_ablations.sh vmim|infovae|publish [WORKERS] [NAMES]" >&2; exit 2 ;;
esac
wait
