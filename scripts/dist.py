"""Writes dist/: the Python wheel, its sqlite-utils and Datasette plugin wheels, and the two
npm tarballs, around a built libforyou.so.

Usage: python3 scripts/dist.py target/release/libforyou.so dist

No build backend and no network: the wheel is a zip written with the standard library
(a .dist-info with METADATA, WHEEL and a RECORD of sha256 hashes, as the wheel spec and
sqlite-vec's sqlite-dist have it), and `npm pack` packs the npm packages from a staging
copy of bindings/node/ with the version and the .so filled in. The version is
Cargo.toml's [package] version.
"""

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What a manylinux wheel may link besides itself (PEP 600 via auditwheel's policy, the
# part of it that a Rust cdylib can need).
ALLOWED_NEEDED = {"libc.so.6", "libm.so.6", "libgcc_s.so.1", "libpthread.so.0", "libdl.so.2",
                  "librt.so.1", "ld-linux-x86-64.so.2"}


def version():
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        return tomllib.load(f)["package"]["version"]


def glibc_needed(so):
    """The newest GLIBC_2.N symbol version the .so asks for (weak references counted too:
    each is a versioned requirement at load time), and its NEEDED libraries."""
    symbols = subprocess.run(["objdump", "-T", so], check=True, capture_output=True, text=True).stdout
    versions = {int(n) for n in re.findall(r"\bGLIBC_2\.(\d+)", symbols)}
    dynamic = subprocess.run(["objdump", "-p", so], check=True, capture_output=True, text=True).stdout
    needed = set(re.findall(r"^\s*NEEDED\s+(\S+)", dynamic, re.M))
    return max(versions), needed


def platform_tag(so):
    # The tag is manylinux_2_N_x86_64 with N the newest glibc symbol version the .so
    # needs (objdump -T): 2.34 for a Rust 1.9x build on Debian 12 (pthread_* and dlsym
    # moved into libc in glibc 2.34). pip accepts a manylinux_2_N wheel where the running
    # glibc is 2.N or newer (Debian 12: 2.36, Ubuntu 22.04: 2.35, RHEL 9: 2.34), and refuses
    # it on older systems instead of installing an extension that would fail to load.
    # Tagging older would be a lie: those systems' dynamic loader rejects the .so.
    n, needed = glibc_needed(so)
    extra = needed - ALLOWED_NEEDED
    if extra:
        sys.exit(f"dist.py: {so} links {sorted(extra)}, which a manylinux wheel may not")
    return n, f"manylinux_2_{n}_x86_64"


def record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def fill(text, values):
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    left = re.search(r"@[A-Z_]+@", text)
    if left:
        sys.exit(f"dist.py: no value for {left.group(0)}")
    return text


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def write_wheel(out, name, ver, tag, purelib, metadata, files, entry_points=None):
    """A wheel of files [(path, bytes, mode)] with its .dist-info (METADATA, WHEEL, the
    licences, entry_points.txt when given, and a RECORD of sha256 hashes)."""
    dist_info = f"{name}-{ver}.dist-info"
    wheel_file = (
        "Wheel-Version: 1.0\n"
        "Generator: foryou scripts/dist.py\n"
        f"Root-Is-Purelib: {'true' if purelib else 'false'}\n"
        f"Tag: {tag}\n"
    )
    files = list(files) + [
        (f"{dist_info}/METADATA", metadata.encode(), 0o644),
        (f"{dist_info}/WHEEL", wheel_file.encode(), 0o644),
    ]
    if entry_points:
        files.append((f"{dist_info}/entry_points.txt", entry_points.encode(), 0o644))
    for lic in ("LICENSE-MIT", "LICENSE-APACHE"):
        with open(os.path.join(ROOT, lic), "rb") as f:
            files.append((f"{dist_info}/licenses/{lic}", f.read(), 0o644))
    record = "".join(f"{p},{record_hash(d)},{len(d)}\n" for p, d, _ in files) + f"{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode(), 0o644))

    path = os.path.join(out, f"{name}-{ver}-{tag}.whl")
    # Fixed timestamps (SOURCE_DATE_EPOCH, else 1980): the same inputs give the same wheel.
    stamp = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))
    date_time = tuple(time.gmtime(max(stamp, 315532800))[:6])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for p, d, mode in files:
            info = zipfile.ZipInfo(p, date_time)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, d)
    return path


def metadata(name, ver, summary, readme, requires=(), keywords="sqlite,sqlite-extension,recommender"):
    return (
        "Metadata-Version: 2.1\n"
        f"Name: {name}\n"
        f"Version: {ver}\n"
        f"Summary: {summary}\n"
        "License: MIT OR Apache-2.0\n"
        f"Keywords: {keywords}\n"
        "Classifier: Operating System :: POSIX :: Linux\n"
        "Classifier: Programming Language :: Python :: 3\n"
        "Requires-Python: >=3.8\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires)
        + "Description-Content-Type: text/markdown\n"
        "\n" + readme
    )


def package_files(src, module):
    """Every file under src/module (sorted, no caches), as wheel entries."""
    files = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(src, module)):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for filename in sorted(filenames):
            if filename.endswith((".pyc", ".pyo")):
                continue
            full = os.path.join(dirpath, filename)
            with open(full, "rb") as f:
                files.append((os.path.relpath(full, src).replace(os.sep, "/"), f.read(), 0o644))
    return files


def wheel(so, out, ver, tag, values):
    src = os.path.join(ROOT, "bindings", "python")
    with open(so, "rb") as f:
        so_bytes = f.read()
    files = [
        ("sqlite_foryou/__init__.py", read(os.path.join(src, "sqlite_foryou", "__init__.py")).encode(), 0o644),
        ("sqlite_foryou/_version.py", f'__version__ = "{ver}"\n'.encode(), 0o644),
        ("sqlite_foryou/libforyou.so", so_bytes, 0o755),
    ]
    meta = metadata(
        "sqlite-foryou", ver,
        "A SQLite extension that turns any database into a short-video (For You feed) recommender",
        fill(read(os.path.join(src, "README.md")), values),
    )
    return write_wheel(out, "sqlite_foryou", ver, f"py3-none-{tag}", False, meta, files)


# The plugins: pure-Python wheels of the same version, each depending on sqlite-foryou
# (which carries the .so) and on the tool it plugs into, found through its entry point.
# The lower bounds are the first releases with the hooks used (sqlite-utils 3.34:
# prepare_connection; Datasette 0.64: the hooks and APIs of datasette_sqlite_foryou);
# Datasette 1.0 changes the permission hooks, hence the upper bound. Tested with the
# versions pinned in tests/plugins/requirements.txt.
PLUGINS = [
    ("sqlite-utils-sqlite-foryou", "sqlite_utils_sqlite_foryou", "sqlite-utils", "sqlite_utils",
     "sqlite-utils>=3.34", "A sqlite-utils plugin that loads foryou, the short-video recommender SQLite extension"),
    ("datasette-sqlite-foryou", "datasette_sqlite_foryou", "datasette", "datasette",
     "datasette>=0.64,<1.0", "A Datasette plugin for foryou: loads the recommender SQLite extension, with "
     "pages for each model, a user's feed, similar items and refits"),
]


def plugin_wheels(out, ver, values):
    made = []
    for name, module, folder, group, host, summary in PLUGINS:
        src = os.path.join(ROOT, "bindings", folder)
        meta = metadata(name, ver, summary, fill(read(os.path.join(src, "README.md")), values),
                        requires=[f"sqlite-foryou=={ver}", host],
                        keywords=f"sqlite,sqlite-extension,recommender,{folder}")
        # The entry point's name is what the host lists among its plugins.
        entry_points = f"[{group}]\nsqlite_foryou = {module}\n"
        made.append(write_wheel(out, module, ver, "py3-none-any", True, meta,
                                package_files(src, module), entry_points))
    return made


def npm_pack(package_dir, out):
    result = subprocess.run(["npm", "pack", "--silent", "--pack-destination", os.path.abspath(out)],
                            cwd=package_dir, check=True, capture_output=True, text=True)
    return os.path.join(out, result.stdout.strip().splitlines()[-1])


def npm(so, out, values):
    made = []
    with tempfile.TemporaryDirectory() as stage:
        for pkg in ("sqlite-foryou-linux-x64", "sqlite-foryou"):
            src, dst = os.path.join(ROOT, "bindings", "node", pkg), os.path.join(stage, pkg)
            os.makedirs(dst)
            for entry in sorted(os.listdir(src)):
                text = read(os.path.join(src, entry))
                with open(os.path.join(dst, entry), "w", encoding="utf-8") as f:
                    f.write(fill(text, values) if entry in ("package.json", "README.md") else text)
            for lic in ("LICENSE-MIT", "LICENSE-APACHE"):
                shutil.copy(os.path.join(ROOT, lic), dst)
            if pkg.endswith("-linux-x64"):
                shutil.copy(so, os.path.join(dst, "libforyou.so"))
            made.append(npm_pack(dst, out))
    return made


def main(so, out):
    ver = version()
    n, tag = platform_tag(so)
    values = {"VERSION": ver, "GLIBC": f"2.{n}", "GLIBC_TAG": f"2_{n}"}
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    made = [wheel(so, out, ver, tag, values)] + plugin_wheels(out, ver, values) + npm(so, out, values)
    for path in made:
        print(f"dist: {path} ({os.path.getsize(path) // 1024} KiB)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
