"""The repository says only true things about itself: package data that exists, documents that are there."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "src" / "patchvsr"
PLACEHOLDERS = {"NAME.md", "NOTES.md"}  # metavars in usage lines, not documents


def test_declared_package_data_exists():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for pattern in config["tool"]["setuptools"]["package-data"]["patchvsr"]:
        assert list(PACKAGE.glob(pattern)), f"package data {pattern!r} matches no file in src/patchvsr"


@pytest.mark.parametrize("folder", ["src", "tests", "scripts"])
def test_documents_cited_in_code_are_in_the_repository(folder):
    """A `NAME.md` named in a comment or docstring is a file of this repository (at the root or in docs/)."""
    cited = {}
    for path in (ROOT / folder).rglob("*.py"):
        for name in re.findall(r"\b((?:docs/)?[\w-]+\.md)\b", path.read_text()):
            cited.setdefault(name, path.relative_to(ROOT))
    missing = {name: str(where) for name, where in cited.items() if name not in PLACEHOLDERS
               and not (ROOT / name).is_file() and not (ROOT / "docs" / name).is_file()
               and not list(PACKAGE.rglob(name))}
    assert missing == {}
