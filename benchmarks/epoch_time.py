"""Speed of the training loop, against the hardware floor and against a DataLoader pipeline.

Model: seed 000's MLP VAE (784-500-500 softplus, z=20, Bernoulli decoder), batch 100, Adam, full MNIST.
Prints, in one run:
  * the measured epoch time of ``vaemi.train`` (in-memory batches);
  * the floor: model FLOPs per epoch / measured dense-matmul FLOP/s on this machine;
  * their ratio (goal <= 1.5x);
  * the time of the same model fed by a torchvision DataLoader with per-item ToTensor (extrapolated from
    a fraction of an epoch), and the speed-up of vaemi over it (goal >= 15x).

Usage: python benchmarks/epoch_time.py [--epochs 2] [--loader-batches 100]
"""
from __future__ import annotations

import argparse
import time

import torch

from vaemi import build_vae, get_loss, load_dataset, train
from vaemi.data import default_root
from vaemi.train.loop import resolve_device, seed_everything

HIDDEN, Z, BATCH = (500, 500), 20, 100


def model_flops_per_example(d_in: int = 784) -> float:
    """Multiply-adds of the linear layers x2 (forward) x3 (forward + backward).

    Slightly generous (about 5%): the first layer needs no gradient with respect to its input."""
    enc = [d_in, *HIDDEN, 2 * Z]
    dec = [Z, *HIDDEN, d_in]
    macs = sum(a * b for a, b in zip(enc, enc[1:])) + sum(a * b for a, b in zip(dec, dec[1:]))
    return 2 * macs * 3


def matmul_flops(device: torch.device, n: int = BATCH, k: int = 500, m: int = 500, reps: int = 2000) -> float:
    """FLOP/s of the dominant layer shape (batch x 500 @ 500 x 500), i.e. what these layers can reach."""
    a, b = torch.randn(n, k, device=device), torch.randn(k, m, device=device)
    for _ in range(50):
        a @ b
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync()
    return 2 * n * k * m * reps / (time.perf_counter() - t0)


def dataloader_epoch_seconds(root, device, batches: int) -> float:
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    ds = datasets.MNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
    seed_everything(0)
    model = build_vae((1, 28, 28), Z, hidden=HIDDEN).to(device)
    loss = get_loss("elbo")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)  # same optimizer as vaemi.train
    loader = DataLoader(ds, batch_size=BATCH, shuffle=True)
    t0 = time.perf_counter()
    for i, (x, _) in enumerate(loader):
        if i == batches:
            break
        value, _ = loss(model, x.to(device))
        opt.zero_grad()
        value.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) * len(loader) / batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs of vaemi.train (first one is warm-up)")
    ap.add_argument("--loader-batches", type=int, default=100, help="batches of the DataLoader baseline")
    a = ap.parse_args()
    device = resolve_device()
    data = load_dataset("mnist", "train")
    if data.is_fallback:
        print("WARNING: full MNIST not found; timing the 4,000-image fallback subset")
    n = len(data)
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}, {n} training images")

    seed_everything(0)
    model = build_vae((1, 28, 28), Z, hidden=HIDDEN)
    hist = train(model, get_loss("elbo"), data, epochs=a.epochs, batch_size=BATCH, progress=False)
    epoch = min(hist["seconds"][1:]) if a.epochs > 1 else hist["seconds"][0]

    flops = model_flops_per_example() * n
    rate = matmul_flops(device)
    floor = flops / rate
    print(f"vaemi.train epoch:            {epoch:8.2f} s")
    print(f"model FLOPs per epoch:        {flops / 1e9:8.1f} GFLOP")
    print(f"matmul rate (100x500@500x500): {rate / 1e9:7.1f} GFLOP/s")
    print(f"floor (FLOPs / rate):         {floor:8.2f} s")
    print(f"epoch / floor:                {epoch / floor:8.2f} x   (goal <= 1.5)")
    if data.is_fallback:
        return
    dl = dataloader_epoch_seconds(default_root(), device, a.loader_batches)
    print(f"DataLoader+ToTensor epoch:    {dl:8.2f} s   (extrapolated from {a.loader_batches} batches)")
    print(f"speed-up over DataLoader:     {dl / epoch:8.1f} x   (goal >= 15)")


if __name__ == "__main__":
    main()
