"""Fixtures for kernel tests: plugin packages built and pip-installed for real."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


def build_package(
    root: Path, name: str, files: dict[str, str], entry_points: dict[str, str], version: str = "0.1.0"
) -> Path:
    """Write a plugin distribution (setuptools) and pip-install it into ``root/site``.

    Returns the ``site`` directory: put it on PYTHONPATH (or sys.path) and the distribution's
    entry points are discovered like any installed package's.
    """
    source = root / f"src-{name}"
    for path, text in files.items():
        target = source / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
    eps = "\n".join(f'{k} = "{v}"' for k, v in entry_points.items())
    (source / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{name}"
            version = "{version}"
            requires-python = ">=3.11"

            [project.entry-points.hrkernel]
            """
        )
        + eps
        + "\n"
    )
    site = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(source)],
        check=True,
        capture_output=True,
    )
    return site


@pytest.fixture
def plugin_package(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str, files: dict[str, str], entry_points: dict[str, str]) -> Path:
        return build_package(tmp_path, name, files, entry_points)

    return make
