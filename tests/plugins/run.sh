#!/usr/bin/env bash
# Usage: tests/plugins/run.sh DIST VERSION   (make test-dist, part of make test)
# The sqlite-utils and Datasette plugin wheels of dist/, installed as a user would, outside
# the source tree, and used:
#  - a fresh venv of Debian's /usr/bin/python3 (its sqlite3 loads extensions) with
#    sqlite-utils and Datasette from PyPI, pinned in tests/plugins/requirements.txt;
#  - `sqlite-utils install sqlite-utils-sqlite-foryou` and `datasette install
#    datasette-sqlite-foryou` by name, from dist/ alone (PIP_FIND_LINKS, PIP_NO_INDEX:
#    they are not on PyPI), each pulling in the sqlite-foryou wheel it depends on; a plugin
#    wheel without it refuses to install;
#  - check_sqlite_utils.py: the test database built, refitted and queried through the
#    sqlite-utils command line;
#  - check_datasette.py: Datasette serving it on 127.0.0.1, its pages read and clicked by
#    headless Chromium (Debian's chromium, driven by chromium.py over a pipe).
# Leaves the screenshot, the pages' DOM and the logs in target/plugins-test/.
set -euo pipefail
dist=$(cd "$1" && pwd) version=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/target/plugins-test
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$out" && mkdir -p "$out"
began=$(date +%s)

if ! command -v chromium >/dev/null 2>&1; then
    echo "plugins: chromium (Debian's package) is needed: apt-get install chromium (.ci/run installs it)" >&2
    exit 1
fi

py=/usr/bin/python3
if ! "$py" -m venv "$work/venv" >/dev/null 2>&1; then
    echo "plugins: $py -m venv failed: apt-get install python3-venv (.ci/run installs it)" >&2
    exit 1
fi
bin=$work/venv/bin
"$bin/pip" install -q --disable-pip-version-check --no-input -r "$here/requirements.txt"

# The plugins by name from dist/ only. A plugin alone, without the wheel it depends on, is
# refused: the dependency is declared (and pins the same version).
export PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
if "$bin/sqlite-utils" install "$dist/sqlite_utils_sqlite_foryou-$version-py3-none-any.whl" >"$out/refused.log" 2>&1; then
    echo "plugins: sqlite-utils-sqlite-foryou installed without sqlite-foryou" >&2
    exit 1
fi
grep -q "sqlite-foryou==$version" "$out/refused.log" ||
    { echo "plugins: the refused install does not name sqlite-foryou==$version:" >&2; cat "$out/refused.log" >&2; exit 1; }
export PIP_FIND_LINKS=$dist
"$bin/sqlite-utils" install sqlite-utils-sqlite-foryou >"$out/install.log" 2>&1 ||
    { cat "$out/install.log" >&2; exit 1; }
"$bin/datasette" install datasette-sqlite-foryou >>"$out/install.log" 2>&1 ||
    { cat "$out/install.log" >&2; exit 1; }
unset PIP_NO_INDEX PIP_FIND_LINKS
installed=$(cd "$work" && "$bin/python" -c '
from importlib import metadata
print(" ".join(f"{n}=={metadata.version(n)}" for n in
      ("sqlite-foryou", "sqlite-utils-sqlite-foryou", "datasette-sqlite-foryou")))')
[ "$installed" = "sqlite-foryou==$version sqlite-utils-sqlite-foryou==$version datasette-sqlite-foryou==$version" ] ||
    { echo "plugins: installed $installed, not version $version" >&2; exit 1; }

cp "$here/check_sqlite_utils.py" "$here/check_datasette.py" "$here/chromium.py" "$work/"
(cd "$work" && "$bin/python" check_sqlite_utils.py "$bin/sqlite-utils" "$work/test.db" "$version")
(cd "$work" && "$bin/python" check_datasette.py "$bin/datasette" "$work/test.db" "$version" "$out")
echo "plugins: passed in $(($(date +%s) - began)) s (artefacts in ${out#"$root"/}/)"
