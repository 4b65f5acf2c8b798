"""Writes dist/: the Python wheel and the two npm tarballs, around a built libforyou.so.

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


def wheel(so, out, ver, tag, values):
    name, dist_info = "sqlite_foryou", f"sqlite_foryou-{ver}.dist-info"
    src = os.path.join(ROOT, "bindings", "python")
    metadata = (
        "Metadata-Version: 2.1\n"
        "Name: sqlite-foryou\n"
        f"Version: {ver}\n"
        "Summary: A SQLite extension that turns any database into a short-video (For You feed) recommender\n"
        "License: MIT OR Apache-2.0\n"
        "Keywords: sqlite,sqlite-extension,recommender\n"
        "Classifier: Operating System :: POSIX :: Linux\n"
        "Classifier: Programming Language :: Python :: 3\n"
        "Requires-Python: >=3.8\n"
        "Description-Content-Type: text/markdown\n"
        "\n" + fill(read(os.path.join(src, "README.md")), values)
    )
    wheel_file = (
        "Wheel-Version: 1.0\n"
        "Generator: foryou scripts/dist.py\n"
        "Root-Is-Purelib: false\n"
        f"Tag: py3-none-{tag}\n"
    )
    with open(so, "rb") as f:
        so_bytes = f.read()
    files = [
        (f"{name}/__init__.py", read(os.path.join(src, name, "__init__.py")).encode(), 0o644),
        (f"{name}/_version.py", f'__version__ = "{ver}"\n'.encode(), 0o644),
        (f"{name}/libforyou.so", so_bytes, 0o755),
        (f"{dist_info}/METADATA", metadata.encode(), 0o644),
        (f"{dist_info}/WHEEL", wheel_file.encode(), 0o644),
    ]
    for lic in ("LICENSE-MIT", "LICENSE-APACHE"):
        with open(os.path.join(ROOT, lic), "rb") as f:
            files.append((f"{dist_info}/licenses/{lic}", f.read(), 0o644))
    record = "".join(f"{p},{record_hash(d)},{len(d)}\n" for p, d, _ in files) + f"{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode(), 0o644))

    path = os.path.join(out, f"sqlite_foryou-{ver}-py3-none-{tag}.whl")
    # Fixed timestamps (SOURCE_DATE_EPOCH, else 1980): the same .so gives the same wheel.
    stamp = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))
    date_time = tuple(time.gmtime(max(stamp, 315532800))[:6])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for p, d, mode in files:
            info = zipfile.ZipInfo(p, date_time)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, d)
    return path


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
    made = [wheel(so, out, ver, tag, values)] + npm(so, out, values)
    for path in made:
        print(f"dist: {path} ({os.path.getsize(path) // 1024} KiB)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
