#!/usr/bin/env bash
# The suite on the oldest supported Python with the lowest declared dependency versions
# (.ci/lowest.txt), and on the newest supported Python with the newest versions, each in a
# fresh venv. An interpreter is python3.X on PATH or a pyenv version; a missing one is reported
# as NOT TESTED (and fails the run when CI is set).
set -euo pipefail
cd "$(dirname "$0")/.."
OLDEST=3.10
NEWEST=3.13

find_python() {
    local candidate
    for candidate in "python$1" "$HOME"/.pyenv/versions/"$1".*/bin/python; do
        # A pyenv shim is on PATH even where its version is not selected: try to run it.
        if "$candidate" -c 'import sys' >/dev/null 2>&1; then echo "$candidate"; return 0; fi
    done
    return 1
}

suite() {  # suite VERSION PIP-ARGS...
    local version=$1 py venv
    shift
    if ! py=$(find_python "$version"); then
        echo "versions: Python $version NOT TESTED: no python$version on PATH or under ~/.pyenv" >&2
        [ -z "${CI:-}" ] && return 0 || return 1
    fi
    venv="${TMPDIR:-/tmp}/charrnn-py$version"
    "$py" -m venv --clear "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@" -e '.[test]'
    echo "versions: Python $("$venv/bin/python" -V 2>&1 | cut -d' ' -f2) with" \
        "$("$venv/bin/python" -m pip list --format=freeze 2>/dev/null | grep -iE '^(numpy|click|tqdm|pyyaml)=' | tr '\n' ' ')"
    "$venv/bin/python" -m pytest -q -p no:cacheprovider
}

suite "$OLDEST" -c .ci/lowest.txt
suite "$NEWEST" --upgrade
