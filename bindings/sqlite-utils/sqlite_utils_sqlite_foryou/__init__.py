"""The sqlite-utils plugin for foryou: every connection sqlite-utils opens gets the extension.

    sqlite-utils install sqlite-utils-sqlite-foryou
    sqlite-utils query feed.db "select * from recommend(1, 5)"

The extension itself comes from the sqlite-foryou wheel this one depends on.
"""

import sqlite_foryou
from sqlite_utils import hookimpl


@hookimpl
def prepare_connection(conn):
    # load() enables extension loading for the call only, and says what to do where the
    # Python's sqlite3 cannot load extensions at all.
    sqlite_foryou.load(conn)
