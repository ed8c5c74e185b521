"""Registering the kernel and stopping kernels leave nothing in the temporary folder: a sweep starts hundreds of
kernels, and every file they leave behind stays on the disk until someone removes it."""
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest
from nbclient.util import run_sync

from vaemi.book import build as book


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """An empty folder that ``tempfile`` uses for the test's duration."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def test_registering_the_kernel_leaves_no_temporary_folder(private_tmp, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    where = book.install_kernel()
    assert where == tmp_path / "prefix" / "share" / "jupyter" / "kernels" / book.KERNEL
    spec = json.loads((where / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable and spec["argv"][-1] == "--IPKernelApp.log_level=ERROR"
    assert spec["display_name"] == "Python (vaemi)" and "{connection_file}" in spec["argv"]
    assert list(private_tmp.iterdir()) == []


@pytest.mark.slow  # starts a kernel
def test_stopping_a_kernel_that_died_removes_its_connection_file(private_tmp):
    sockets = tempfile.mkdtemp(prefix="vaemi-k")
    km = book.kernel_manager({}, book.ensure_kernel(), sockets)
    run_sync(km.start_kernel)()
    connection = Path(km.connection_file)
    assert connection.parent == private_tmp and connection.is_file()
    os.kill(km.provisioner.process.pid, signal.SIGKILL)
    for _ in range(50):
        if not run_sync(km.is_alive)():
            break
        time.sleep(0.1)
    book.shut_down(km)
    shutil.rmtree(sockets)
    assert list(private_tmp.iterdir()) == []
