"""The repository stands on its own: no tracked file names a path outside it."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import REPO

# Spelt in pieces so this file does not match itself.
OUTSIDE = ["../" + "shared", "/" + "work/"]


def tracked_files() -> list:
    if shutil.which("git") is None or not os.path.isdir(os.path.join(REPO, ".git")) and \
            not os.path.isfile(os.path.join(REPO, ".git")):
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    return [p for p in out.stdout.decode().split("\0") if p]


def test_no_tracked_file_names_a_path_outside_the_repository():
    found = []
    for path in tracked_files():
        full = os.path.join(REPO, path)
        if not os.path.isfile(full):
            continue
        with open(full, "rb") as fh:
            data = fh.read()
        found += [f"{path}: {needle}" for needle in OUTSIDE if needle.encode() in data]
    assert not found, found
