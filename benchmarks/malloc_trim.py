"""What Dask's worker environment costs a chapter's training: the same training steps in a child process with and
without ``MALLOC_TRIM_THRESHOLD_=65536``, the value Dask's nanny sets in its workers (and that a sweep run's kernel
would inherit without :data:`vaemi.sweep.run.KERNEL_UNSET`).

Model: the VIMAE chapter's WAE/DCGAN nets at its book size (channels 8-64, code 8) and the MLP VAE of seed 000 (784-500-500, z=20), batch 100, Adam, one
thread, on random binary images (the data does not matter for the time). Prints the seconds of each and their ratio.

Usage: python benchmarks/malloc_trim.py [--steps 200]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = r"""
import time, torch
from vaemi import build_vae, get_loss, train
torch.manual_seed(0)
x = (torch.rand(STEPS * 100, 1, 28, 28) < 0.3).float()
for arch, kw in (("dcgan", dict(arch="dcgan", channels=(8, 16, 32, 64))), ("mlp", dict(hidden=(500, 500)))):
    m = build_vae((1, 28, 28), 8 if arch == "dcgan" else 20, **kw)
    t0 = time.perf_counter()
    train(m, get_loss("elbo"), x, epochs=1, batch_size=100, progress=False)
    print(arch, time.perf_counter() - t0)
"""


def run(steps: int, trim: bool) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if trim:
        env["MALLOC_TRIM_THRESHOLD_"] = "65536"
    out = subprocess.run([sys.executable, "-c", CHILD.replace("STEPS", str(steps))], env=env, capture_output=True,
                         text=True, check=True).stdout
    return {line.split()[0]: float(line.split()[1]) for line in out.splitlines()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=200, help="training steps of each model (batch 100)")
    a = ap.parse_args()
    plain, trimmed = run(a.steps, False), run(a.steps, True)
    for arch in plain:
        print(f"{arch}: {plain[arch]:.1f} s as a kernel of make book, {trimmed[arch]:.1f} s with Dask's "
              f"MALLOC_TRIM_THRESHOLD_ ({trimmed[arch] / plain[arch]:.2f}x)")


if __name__ == "__main__":
    main()
