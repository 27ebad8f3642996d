"""What `pip install conveyor` ships: every data file the package reads at run time."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "conveyor"


def test_every_data_file_of_the_package_is_in_its_package_data() -> None:
    """A template or a static file missing from ``package-data`` works in a checkout and breaks
    in a wheel (the image, a user's pip install): `conveyor ui` lost its pages that way once."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["conveyor"]
    data_files = [
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    ]
    assert data_files, "no data files found: the walk is wrong"
    missing = [f for f in data_files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert missing == [], f"not shipped in a wheel (add to package-data): {missing}"
