"""The versions pyproject.toml claims are the ones .ci/versions.sh tests."""
from __future__ import annotations

import os
import re

from conftest import REPO


def read(path: str) -> str:
    with open(os.path.join(REPO, path), encoding="utf-8") as fh:
        return fh.read()


def declared_floors() -> dict:
    """{'numpy': '1.22', ...}: each `name>=version` of the runtime dependencies and the test
    extra, what .ci/versions.sh installs (other extras are optional and not pinned)."""
    text = read("pyproject.toml")
    runtime = re.search(r"^dependencies = \[(.*?)\]", text, re.S | re.M).group(1)
    test = re.search(r"^test = \[(.*?)\]", text, re.M).group(1)
    return {name.lower(): version for name, version in re.findall(r'"([A-Za-z][\w.-]*)>=([\d.]+)"', runtime + test)}


def pinned_lowest() -> dict:
    lines = [line.split("#")[0].strip() for line in read(".ci/lowest.txt").splitlines()]
    return dict(line.lower().split("==") for line in lines if line)


def same_version(a: str, b: str) -> bool:
    pad = lambda v: tuple(int(x) for x in v.split(".")) + (0,) * (3 - len(v.split(".")))  # noqa: E731
    return pad(a) == pad(b)


def test_the_lowest_pins_are_the_declared_floors():
    floors, pins = declared_floors(), pinned_lowest()
    assert set(floors) == set(pins)
    for name, version in floors.items():
        assert same_version(version, pins[name]), (name, version, pins[name])


def test_the_oldest_python_tested_is_the_one_declared():
    declared = re.search(r'requires-python = ">=(3\.\d+)"', read("pyproject.toml")).group(1)
    assert f"OLDEST={declared}\n" in read(".ci/versions.sh")
    assert "bash .ci/versions.sh" in read(".ci/run") and "make test" in read(".ci/run")
