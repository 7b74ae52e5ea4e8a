"""The kit as a user installs it: a wheel built from this checkout, installed into a fresh virtual environment
and run from a folder outside the clone, finds everything it reads at run time inside itself."""
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from mavil_lite.data.synthetic import generate_synthetic_dataset

REPO = Path(__file__).resolve().parents[1]


def run(*command, cwd: Path) -> str:
    result = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the fresh environment's python, a folder outside the clone)."""
    root = tmp_path_factory.mktemp("wheel")
    # built from a copy of what the wheel is made of, so no stale build/ folder of the checkout can slip into it
    source = root / "source"
    shutil.copytree(REPO / "mavil_lite", source / "mavil_lite", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", root / "dist",
        source, cwd=root)
    wheel = next((root / "dist").glob("mavil_lite-*.whl"))
    venv.create(root / "env", with_pip=True)
    python = root / "env" / "bin" / "python"
    # No network here: the fresh environment borrows the dependencies (torch, ...) of this one through a .pth line.
    # A folder named in a .pth is not scanned for .pth files itself, so this environment's editable install of the
    # kit is not seen: `mavil_lite` can only come from the wheel.
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=root).strip())
    (purelib / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel, cwd=root)
    outside = root / "elsewhere"
    outside.mkdir()
    return python, outside


def test_the_installed_package_is_the_wheel_and_reads_its_paper_numbers(installed):
    python, outside = installed
    out = run(python, "-c", "import mavil_lite as m; print(m.__file__); "
                            "print(len(m.load_paper_numbers()), m.paper_ablation()[5]['audio'])", cwd=outside)
    location, numbers = out.splitlines()
    assert location.startswith(str(python.parent.parent)), location  # the fresh environment's copy, from the wheel
    count, row5_audio = numbers.split()
    assert int(count) > 50 and float(row5_audio) > 0


def test_the_command_lists_the_recipes_and_pre_trains_from_one(installed, tmp_path):
    python, outside = installed
    mavil_lite = python.parent / "mavil-lite"
    listed = run(mavil_lite, "recipes", cwd=outside)
    assert {"as2m_pretrain", "grid_pretrain", "esc50_finetune"} <= {line.split()[0] for line in listed.splitlines()}
    manifest = generate_synthetic_dataset(tmp_path / "clips", num_clips=8, seed=0, progress=False)
    run(mavil_lite, "pretrain", "--recipe", "grid_pretrain", "--out", outside / "run", "--device", "cpu",
        f"data.manifest={manifest}", "train.epochs=1", "train.batch_size=4", cwd=outside)
    assert (outside / "run" / "checkpoint.pt").stat().st_size > 1_000_000
