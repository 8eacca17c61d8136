"""The release path: build an sdist and a wheel from it, install the wheel
into a fresh venv (with the pinned torch only) and use it there."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH_VERSION = os.environ.get("TORCH_VERSION", "2.13.0")

SMOKE = """
import torch, xattr
from xattr import ops
assert xattr.kernels_available(), "the wheel's _C did not load"
m = ops.mus_noise(8, 5, 0.25, seed=0)
assert m.sum(0).tolist() == [2] * 5
x = torch.arange(4.0).reshape(1, 4)
out = ops.mask_apply(x, torch.tensor([[True, False]]), torch.tensor([0, 0, 1, 1]))
assert out.tolist() == [[[0.0, 1.0, 0.0, 0.0]]]
print("ok", xattr.__version__, xattr.cuda_available())
"""


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


@pytest.mark.skipif(os.environ.get("XATTR_SKIP_DIST") == "1", reason="XATTR_SKIP_DIST=1")
def test_sdist_wheel_installs_into_fresh_venv(tmp_path):
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], cwd=tmp_path)
    sdists = list(dist.glob("torch_xattr-*.tar.gz"))
    wheels = list(dist.glob("torch_xattr-*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in dist.iterdir())

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = str(env_dir / "bin" / "python")
    run([py, "-m", "pip", "install", "-q", f"torch=={TORCH_VERSION}", str(wheels[0])])
    freeze = run([py, "-m", "pip", "freeze"]).stdout
    torch_lines = [line for line in freeze.splitlines() if line.lower().startswith("torch==")]
    assert torch_lines and torch_lines[0].startswith(f"torch=={TORCH_VERSION}"), freeze
    out = run([py, "-c", SMOKE], cwd=tmp_path).stdout  # not the repo: the installed wheel
    assert out.startswith(f"ok {importlib.metadata.version('torch-xattr')} ")
