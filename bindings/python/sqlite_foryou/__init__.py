"""foryou, the short-video "For You" recommender SQLite extension, as a Python package.

    import sqlite3, sqlite_foryou
    con = sqlite3.connect("feed.db")
    sqlite_foryou.load(con)

The wheel carries the compiled extension (libforyou.so) next to this file; scripts/dist.py
builds it (make dist).
"""

import os

from ._version import __version__

__all__ = ["__version__", "loadable_path", "load"]

_NO_LOADING = (
    "sqlite_foryou.load: this connection cannot load SQLite extensions: {kind} has no "
    "enable_load_extension(). Python's sqlite3 module lacks it when Python was built without "
    "--enable-loadable-sqlite-extensions (pyenv and python.org builds often are; Debian's and "
    "Ubuntu's python3 have it). Use such a Python, or pass an APSW connection (pip install apsw) "
    "or a sqlean.py one (pip install sqlean.py: import sqlean as sqlite3) instead."
)


def loadable_path():
    """The extension's path without its .so suffix, as load_extension() and the sqlite3
    shell's .load take it (SQLite adds the suffix)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "libforyou")


def load(conn):
    """Loads foryou into an open connection: the standard library's sqlite3, APSW or
    sqlean.py. Extension loading is enabled for the call only, then disabled again."""
    enable = getattr(conn, "enable_load_extension", None)
    if enable is None:
        raise RuntimeError(_NO_LOADING.format(kind=f"{type(conn).__module__}.{type(conn).__qualname__}"))
    enable(True)
    try:
        conn.load_extension(loadable_path())
    finally:
        enable(False)
