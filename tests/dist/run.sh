#!/usr/bin/env bash
# Usage: tests/dist/run.sh DIST VERSION   (make test-dist, part of make test)
# Installs dist/'s packages as a user would, outside the source tree, and runs a feed
# through each:
#  - the wheel: a fresh venv of Debian's /usr/bin/python3 (its sqlite3 loads extensions),
#    pip install --no-index of the local wheel, tests/dist/check.py; then the pyenv
#    python3 first on PATH, whose sqlite3 cannot load extensions, gets load()'s error;
#  - the npm tarballs: a fresh project, npm install of both .tgz, better-sqlite3 from the
#    registry, tests/dist/check.cjs and check.mjs, then without the platform package.
# better-sqlite3's prebuilt binary comes from GitHub, which CI cannot reach, so it is
# built from source once (node-gyp, Debian's build-essential, the headers Node ships in
# /usr/include/node; about a minute) into target/dist-test/ and linked into each fresh
# project.
set -euo pipefail
dist=$(cd "$1" && pwd) version=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The README's Install section states the glibc the wheel's tag (from the .so) requires.
wheel=$(basename "$dist"/sqlite_foryou-"$version"-py3-none-manylinux_2_*_x86_64.whl)
glibc=$(echo "$wheel" | sed -n 's/.*manylinux_2_\([0-9]*\)_x86_64.whl/2.\1/p')
grep -q "glibc $glibc or newer" "$root/README.md" ||
    { echo "dist: $wheel needs glibc $glibc, which README.md's Install section does not say" >&2; exit 1; }

# --- Python -----------------------------------------------------------------------
py=/usr/bin/python3
if ! "$py" -m venv "$work/venv" >/dev/null 2>&1; then
    rm -rf "$work/venv"
    echo "installing python3-venv" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y python3-venv >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y python3-venv >/dev/null; }
    "$py" -m venv "$work/venv"
fi
"$work/venv/bin/pip" install -q --no-index --no-deps --disable-pip-version-check "$dist/$wheel"
cp "$here/check.py" "$here/check.cjs" "$here/check.mjs" "$work/"
(cd "$work" && "$work/venv/bin/python" check.py main "$version")
# A Python without extension loading (the pyenv one on PATH here): the same package,
# the error that names the way out. Skipped where that Python can load extensions.
other=$(command -v python3 || true)
if [ -n "$other" ] && [ "$(readlink -f "$other")" != "$(readlink -f "$py")" ] &&
    "$other" -c 'import sqlite3, sys; sys.exit(hasattr(sqlite3.connect(":memory:"), "enable_load_extension"))'; then
    site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    (cd "$work" && PYTHONPATH=$site "$other" check.py refused)
else
    echo "dist: no python3 on PATH without extension loading: load()'s error tested with a stand-in only"
fi

# --- npm --------------------------------------------------------------------------
# better-sqlite3 12 (13 needs Node 22), built once per Node ABI (a .node file is built
# against one); node-gyp takes the headers that Node's Debian package installs in /usr.
better=12.9.0
cache=$root/target/dist-test/better-sqlite3-$better-abi$(node -p process.versions.modules)
if [ ! -f "$cache/node_modules/better-sqlite3/build/Release/better_sqlite3.node" ]; then
    echo "dist: building better-sqlite3 $better from source once into $cache (about a minute)" >&2
    rm -rf "$cache" && mkdir -p "$cache"
    echo "{\"private\": true, \"dependencies\": {\"better-sqlite3\": \"$better\"}}" > "$cache/package.json"
    (cd "$cache" && { [ ! -f /usr/include/node/node.h ] || export npm_config_nodedir=/usr; } &&
        npm install --no-audit --no-fund --loglevel=error >&2)
fi
mkdir "$work/app"
echo '{"name": "app", "private": true}' > "$work/app/package.json"
(cd "$work/app" && npm install --no-audit --no-fund --loglevel=error \
    "$dist/sqlite-foryou-linux-x64-$version.tgz" "$dist/sqlite-foryou-$version.tgz" >/dev/null)
ln -s "$cache/node_modules/better-sqlite3" "$work/app/node_modules/better-sqlite3"
mv "$work/check.cjs" "$work/check.mjs" "$work/app/"
(cd "$work/app" && node check.cjs "$version" && node check.mjs "$version")
mv "$work/app/node_modules/sqlite-foryou-linux-x64" "$work/platform-package"
(cd "$work/app" && node check.cjs missing-platform)
