"""Image sizes from the lock's packages: the demo's environment and a data-science one.

Each environment is locked as ``software="current"`` locks one (pip, for linux x86_64 and
this Python ``X.Y``, dask and distributed at this client's versions); the lock's wheels
are fetched with ``pip download`` (the index is reached through pip only) and measured:
the compressed size (what a pull transfers, about the image layer's size) and the
installed size (the wheels unpacked: what the layer holds). The base image
(``python:X.Y-slim-bookworm``) comes on top.

Usage::

    python benchmarks/image_size.py   # writes docs/benchmarks/image_size.md
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata

from packaging.requirements import Requirement

from starburst_dask.images import piplock
from starburst_dask.images.context import PIP_BASE_IMAGE

PLATFORM = "linux-64"
OUTPUT = pathlib.Path(__file__).parent.parent / "docs" / "benchmarks" / "image_size.md"


def environments() -> dict[str, list[str]]:
    """Each measured environment's requirements, dask and distributed at ours."""
    ours = [f"dask=={metadata.version('dask')}", f"distributed=={metadata.version('distributed')}"]
    demo = [
        r
        for r in metadata.requires("starburst-dask") or []
        if Requirement(r).marker is None  # not an extra
    ]
    return {
        "demo (what `pip install starburst-dask` installs)": ours + demo,
        "data science (dask, pandas, xarray, scipy)": ours
        + ["dask[dataframe]", "pandas", "xarray", "scipy"],
    }


def measure(requirements: list[str], python: str, directory: pathlib.Path) -> dict[str, float]:
    """Lock ``requirements``, download the lock's wheels, and measure them (MB)."""
    locked = piplock.resolve(requirements, PLATFORM, python, directory)
    wheels = directory / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(wheels)]
        + ["--only-binary=:all:", "--python-version", python, "--implementation", "cp"]
        + [arg for tag in piplock.pip_platforms(PLATFORM) for arg in ("--platform", tag)]
        + [f"{p.name}=={p.version}" for p in locked],
        check=True,
    )
    files = sorted(wheels.glob("*.whl"))
    installed = 0
    for file in files:
        with zipfile.ZipFile(file) as archive:
            installed += sum(i.file_size for i in archive.infolist())
    return {
        "packages": len(locked),
        "compressed": sum(f.stat().st_size for f in files) / 1e6,
        "installed": installed / 1e6,
    }


def main() -> None:
    python = ".".join(map(str, sys.version_info[:2]))
    rows = []
    for name, requirements in environments().items():
        with tempfile.TemporaryDirectory(prefix="image-size-") as tmp:
            sizes = measure(requirements, python, pathlib.Path(tmp))
        rows.append(
            f"| {name} | {sizes['packages']:.0f} | {sizes['compressed']:.0f} MB "
            f"| {sizes['installed']:.0f} MB |"
        )
        print(rows[-1])
    base = PIP_BASE_IMAGE.format(python=python)
    OUTPUT.write_text(
        "# Image sizes\n\n"
        'The images `software="current"` builds for a plain virtual environment: '
        f"`{base}` plus the lock's wheels for {PLATFORM} (Fargate X86_64), Python "
        f"{python}, dask {metadata.version('dask')}. Measured by `benchmarks/image_size.py` "
        "from the lock's wheels: *compressed* is what a pull transfers for them (about "
        "their layer's size in ECR), *installed* what the layer holds once unpacked. "
        "The base image comes on top (not measured here: no registry is reached); the "
        "Dockerfile keeps no pip cache, build context or compiler.\n\n"
        "| environment | packages | wheels, compressed | installed |\n"
        "|---|---:|---:|---:|\n" + "\n".join(rows) + "\n"
    )


if __name__ == "__main__":
    main()
