"""mypy checks every package the project ships: one typecheck/ link and one ``files`` entry per
``[tool.setuptools.package-dir]`` mapping (mypy cannot follow the editable-install finder)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_shipped_package_is_type_checked() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_dirs: dict[str, str] = pyproject["tool"]["setuptools"]["package-dir"]
    mypy = pyproject["tool"]["mypy"]
    assert sorted(mypy["files"]) == sorted(f"{mypy['mypy_path']}/{name}" for name in package_dirs)
    for name, folder in package_dirs.items():
        link = ROOT / mypy["mypy_path"] / name
        assert link.is_symlink() and link.resolve() == (ROOT / folder).resolve(), (
            f"typecheck/{name} must be a link to {folder}")
