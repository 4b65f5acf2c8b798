#!/usr/bin/env bash
# Usage: scripts/python-venv.sh VENV REQUIREMENTS
# Makes (once) a virtual environment of Debian's /usr/bin/python3, which can load SQLite
# extensions (the pyenv python3 first on PATH cannot), installs the pinned requirements
# whenever that file changes, and prints the environment's python.
set -euo pipefail
venv=$1 requirements=$2
py=/usr/bin/python3
if [ ! -x "$venv/bin/python" ]; then
    if ! "$py" -m venv "$venv" >/dev/null 2>&1; then
        rm -rf "$venv"
        echo "installing python3-venv" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y python3-venv >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y python3-venv >/dev/null; }
        "$py" -m venv "$venv"
    fi
fi
if ! cmp -s "$requirements" "$venv/.requirements"; then
    "$venv/bin/pip" install -q --disable-pip-version-check --no-input -r "$requirements" >&2
    cp "$requirements" "$venv/.requirements"
fi
echo "$venv/bin/python"
