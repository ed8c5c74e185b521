"""Where a run ran, in words that name no machine and no path: the processor, its cores, the accelerator, and the
versions of Python, torch and CUDA. The results files, the execution status page and the published sweep records
carry it."""
from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["cores", "machine", "versions"]


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """The machine in words: ``"2 cores (Intel(R) Xeon(R) ...)"``, with the GPU when there is one, and the torch
    version."""
    words = f"{cores()} cores ({_cpu()})"
    try:
        import torch  # the chapters' machine: torch is there; the build tooling alone may not need it
    except ImportError:
        return words
    if torch.cuda.is_available():
        words += f", {torch.cuda.get_device_name(0)}"
    return words + f"; torch {torch.__version__}"


def versions() -> dict[str, str | None]:
    """Python, torch and CUDA versions (CUDA None on a CPU build), and the GPU's name (None without one)."""
    out: dict[str, str | None] = {"python": platform.python_version(), "torch": None, "cuda": None, "gpu": None}
    try:
        import torch
    except ImportError:
        return out
    out.update(torch=torch.__version__, cuda=torch.version.cuda)
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out
