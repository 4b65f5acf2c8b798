"""The Datasette plugin for foryou, the short-video ("For You" feed) recommender extension.

- prepare_connection: every connection Datasette opens (read and write) loads foryou, so
  SQL queries can call recommend(), similar_items(), foryou_refit() ...
- /-/foryou lists the foryou tables of every database; /-/foryou/<database>/<table> shows
  a table's model (version, last refit report, tuned and training options, table options),
  one user's feed and an item's similar items, labelled from an items table named in the
  plugin configuration, and a refit button.
- /-/foryou/<database>/<table>/refit (POST, with Datasette's CSRF token) runs foryou_refit
  on Datasette's write connection, for actors with the foryou-refit permission only.

Configuration (metadata.json/yaml, "plugins" -> "datasette-sqlite-foryou", at the top,
database or table level):

    items_table     table with one row per item, joined to the feeds (optional)
    item_id_column  its column holding the item id (default: its primary key)
    label_column    its column shown as the item's label (default: Datasette's label
                    column for that table: label_column metadata, a name/title column)
    item_columns    a list of further columns of it to show
    allow_refit     an allow block ({"id": "root"} unless set) granting foryou-refit
"""

import datetime
import json
import re
import urllib.parse

import sqlite_foryou
from datasette import Forbidden, NotFound, Response, actor_matches_allow, hookimpl
from datasette.utils import escape_sqlite, tilde_decode, tilde_encode

PLUGIN = "datasette-sqlite-foryou"
REFIT_PERMISSION = "foryou-refit"
DEFAULT_ALLOW_REFIT = {"id": "root"}
DEFAULT_K, MAX_K = 10, 100
HISTORY = 10
PAGE_ARGS = ("user", "item", "k")

_USING_FORYOU = re.compile(r"\bUSING\s+foryou\b", re.IGNORECASE)
_INTEGER = re.compile(r"[+-]?[0-9]+")
# Models written before foryou stored `refitted_at`: the 'tag' row was
# "<version>-<refit time in ns since 1970, hex>-...", read only when it has that shape.
_TAG = re.compile(r"([0-9]+)-([0-9a-f]{1,16})-")


class BadInput(ValueError):
    """A form or query-string value that is not what the page needs."""


@hookimpl
def prepare_connection(conn):
    # load() enables extension loading for the call only, then disables it again.
    sqlite_foryou.load(conn)


@hookimpl
def permission_allowed(datasette, actor, action, resource):
    if action != REFIT_PERMISSION:
        return None
    database, table = resource if isinstance(resource, (tuple, list)) else (resource, None)
    config = datasette.plugin_config(PLUGIN, database=database, table=table) or {}
    allow = config.get("allow_refit", DEFAULT_ALLOW_REFIT)
    # None when the block does not match: another plugin may still grant the permission.
    return True if allow is not None and actor_matches_allow(actor, allow) else None


@hookimpl
def register_routes():
    return [
        (r"^/-/foryou$", index_page),
        (r"^/-/foryou/(?P<database>[^/]+)/(?P<table>[^/]+)$", table_page),
        (r"^/-/foryou/(?P<database>[^/]+)/(?P<table>[^/]+)/refit$", refit_action),
    ]


@hookimpl
def table_actions(datasette, actor, database, table):
    async def inner():
        db = datasette.databases.get(database)
        if db is None or table not in await foryou_tables(db):
            return []
        return [{"href": page_url(datasette, db, table), "label": "foryou: model, feeds and refit"}]

    return inner


@hookimpl
def database_actions(datasette, actor, database):
    async def inner():
        db = datasette.databases.get(database)
        if db is None:
            return []
        return [{"href": page_url(datasette, db, t), "label": f"foryou: {t}"} for t in await foryou_tables(db)]

    return inner


@hookimpl
def menu_links(datasette, actor):
    return [{"href": datasette.urls.path("/-/foryou"), "label": "foryou recommenders"}]


# --- helpers ------------------------------------------------------------------------


def page_url(datasette, db, table, args=None):
    """The table's page; with a request's args, showing the same feeds again."""
    return datasette.urls.path(f"/-/foryou/{tilde_encode(db.route)}/{tilde_encode(table)}") + page_query(args)


def page_query(args):
    """'?user=..&item=..&k=..' of the page's own args that args has, or ''."""
    pairs = [(key, args.get(key)) for key in PAGE_ARGS if args and args.get(key) is not None]
    return "?" + urllib.parse.urlencode(pairs) if pairs else ""


async def foryou_tables(db):
    rows = await db.execute(
        "select name, sql from sqlite_master where type = 'table' and sql like 'create virtual table%'"
    )
    return [row["name"] for row in rows.rows if _USING_FORYOU.search(row["sql"] or "")]


def parse_integer(text, what):
    """A form's text as an integer, or BadInput saying what was wrong."""
    value = (text or "").strip()
    if not value:
        raise BadInput(f"{what}: enter an integer")
    if not _INTEGER.fullmatch(value):
        raise BadInput(f"{what} must be an integer, got {text!r}")
    number = int(value)
    if not -(2**63) <= number < 2**63:
        raise BadInput(f"{what} {value} is outside SQLite's 64-bit integer range")
    return number


def parse_k(text):
    if text is None or not text.strip():
        return DEFAULT_K
    k = parse_integer(text, "k")
    if not 1 <= k <= MAX_K:
        raise BadInput(f"k must be between 1 and {MAX_K}, got {k}")
    return k


async def resolve(datasette, request):
    """The (Database, table) of the URL, after Datasette's view checks."""
    route, table = tilde_decode(request.url_vars["database"]), tilde_decode(request.url_vars["table"])
    try:
        db = datasette.get_database(route=route)
    except KeyError:
        raise NotFound(f"Database not found: {route}")
    await datasette.ensure_permissions(
        request.actor, [("view-table", (db.name, table)), ("view-database", db.name), "view-instance"]
    )
    if table not in await foryou_tables(db):
        raise NotFound(f"{table} is not a foryou table of database {db.name}")
    return db, table


def refitted_at(model):
    """The refit's time: the model's `refitted_at` row (Unix seconds); for a model written
    before foryou stored it, from the tag, when the tag has the shape foryou writes."""
    if isinstance(model.get("refitted_at"), int):
        return utc(model["refitted_at"])
    match = _TAG.match(str(model.get("tag", "")))
    if not match or match.group(1) != str(model.get("version")):
        return None
    seconds = int(match.group(2), 16) / 1e9
    if not 946684800 <= seconds < 4102444800:  # 2000 to 2100: anything else is no time
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


def utc(ts):
    if ts is None:
        return None
    try:
        return datetime.datetime.fromtimestamp(int(ts), datetime.timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None


async def model_info(db, table):
    rows = await db.execute(
        f"select key, value from {escape_sqlite(table + '_model')} where key != 'user_digests'"
    )
    model = {row["key"]: row["value"] for row in rows.rows}
    config = await db.execute(f"select key, value from {escape_sqlite(table + '_config')} order by key")
    info = {"config": [(row["key"], row["value"]) for row in config.rows], "version": None}
    if "version" not in model:
        return info
    report = json.loads(model.get("report") or "{}")
    options = json.loads(model.get("options") or "{}")
    when = refitted_at(model)
    newest = utc(model.get("newest_ts"))
    info.update(
        version=model["version"],
        report=report,
        options=sorted(options.items()),
        tuned=report.get("tuned"),
        events_upto=model.get("events_upto"),
        newest_ts=model.get("newest_ts"),
        newest_event=newest.strftime("%Y-%m-%d %H:%M:%S UTC") if newest else None,
        refitted_at=when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else None,
        refitted_at_iso=when.isoformat(timespec="seconds") if when else None,
    )
    return info


async def item_source(datasette, request, db, table):
    """How to label items: the configured items table and its columns, or None."""
    config = datasette.plugin_config(PLUGIN, database=db.name, table=table) or {}
    items = config.get("items_table")
    if not items:
        return None, None
    if not await db.table_exists(items):
        return None, f"items_table {items!r} (plugin configuration) is not a table of database {db.name}"
    if not await datasette.permission_allowed(request.actor, "view-table", (db.name, items), default=True):
        return None, None
    columns = await db.table_columns(items)
    pks = await db.primary_keys(items)
    id_column = config.get("item_id_column") or (pks[0] if len(pks) == 1 else None)
    if id_column is None:
        return None, f"items_table {items!r} has no single-column primary key: set item_id_column"
    label = config.get("label_column") or await db.label_column_for_table(items)
    extra = list(config.get("item_columns") or [])
    for column in [id_column] + ([label] if label else []) + extra:
        if column not in columns and column != "rowid":
            return None, f"column {column!r} (plugin configuration) is not a column of {items}"
    return {
        "table": items,
        "id": id_column,
        "label": label,
        "extra": [c for c in extra if c not in (id_column, label)],
        "linked": pks == [id_column] or (not pks and id_column == "rowid"),
    }, None


async def ranked(db, function, subject, k, table):
    """rank, item_id, score of recommend() or similar_items() for this table."""
    sql = f"select rank, item_id, score from {function}(:subject, :k, :model) order by rank"
    return [dict(row) for row in (await db.execute(sql, {"subject": subject, "k": k, "model": table})).rows]


async def add_labels(datasette, db, source, rows):
    """Adds each row's item label, further columns and link from the items table."""
    found = {}
    if source and rows:
        cols = [source["id"]] + ([source["label"]] if source["label"] else []) + source["extra"]
        sql = (
            f"select {', '.join(escape_sqlite(c) for c in cols)} from {escape_sqlite(source['table'])} "
            f"where {escape_sqlite(source['id'])} in (select value from json_each(:ids))"
        )
        ids = json.dumps(sorted({row["item_id"] for row in rows}))
        found = {r[0]: r for r in (await db.execute(sql, {"ids": ids})).rows}
    for row in rows:
        item = found.get(row["item_id"])
        row["known"] = item is not None
        row["label"] = item[source["label"]] if item is not None and source["label"] else None
        row["extra"] = [(c, item[c] if item is not None else None) for c in source["extra"]] if source else []
        if item is not None and source["linked"]:
            row["href"] = datasette.urls.row(db.name, source["table"], tilde_encode(str(row["item_id"])))
    return rows


# --- pages --------------------------------------------------------------------------


async def index_page(datasette, request):
    await datasette.ensure_permissions(request.actor, ["view-instance"])
    tables = []
    for name, db in datasette.databases.items():
        if name == "_internal":
            continue
        if not await datasette.permission_allowed(request.actor, "view-database", name, default=True):
            continue
        for table in await foryou_tables(db):
            if await datasette.permission_allowed(request.actor, "view-table", (name, table), default=True):
                version = await db.execute(
                    f"select value from {escape_sqlite(table + '_model')} where key = 'version'"
                )
                tables.append({
                    "database": name,
                    "table": table,
                    "href": page_url(datasette, db, table),
                    "version": version.rows[0][0] if version.rows else None,
                })
    return Response.html(
        await datasette.render_template("foryou_index.html", {"tables": tables}, request=request)
    )


async def table_page(datasette, request):
    db, table = await resolve(datasette, request)
    args = request.args
    context = {
        "database": db.name,
        "table": table,
        "table_url": datasette.urls.table(db.name, table),
        "page_url": page_url(datasette, db, table),
        # The refit comes back to this page with the same feeds shown.
        "refit_url": page_url(datasette, db, table) + "/refit" + page_query(args),
        "can_refit": await datasette.permission_allowed(
            request.actor, REFIT_PERMISSION, (db.name, table), default=False
        ),
        "permission": REFIT_PERMISSION,
        "immutable": not db.is_mutable,
        "user_text": args.get("user", ""),
        "item_text": args.get("item", ""),
        "k_text": args.get("k", ""),
        "errors": [],
    }
    status = 200
    context["model"] = await model_info(db, table)
    source, config_error = await item_source(datasette, request, db, table)
    context["items_table"] = source["table"] if source else None
    context["extra_columns"] = source["extra"] if source else []
    if config_error:
        context["errors"].append(config_error)
    try:
        k = parse_k(args.get("k"))
    except BadInput as e:
        context["errors"].append(str(e))
        k, status = None, 400
    context["k"] = k or DEFAULT_K

    for key, function, what in (("user", "recommend", "user id"), ("item", "similar_items", "item id")):
        text = args.get(key)
        if text is None or k is None:
            continue
        try:
            subject = parse_integer(text, what)
        except BadInput as e:
            context["errors"].append(str(e))
            status = 400
            continue
        try:
            context[f"{key}_rows"] = await add_labels(datasette, db, source, await ranked(db, function, subject, k, table))
            context[key] = subject
            if key == "user":
                history = await db.execute(
                    f"select item_id, watch_time, duration, ts from {escape_sqlite(table)} "
                    "where user_id = :user order by ts desc limit :n",
                    {"user": subject, "n": HISTORY},
                )
                context["history"] = await add_labels(datasette, db, source, [dict(r) for r in history.rows])
            else:
                context["item_row"] = (await add_labels(datasette, db, source, [{"item_id": subject}]))[0]
        except Exception as e:  # SQLite's or foryou's error, shown on the page
            context["errors"].append(f"{function}({subject}, {k}, '{table}'): {e}")
            status = 500 if status == 200 else status
    return Response.html(
        await datasette.render_template("foryou_table.html", context, request=request), status=status
    )


async def refit_action(datasette, request):
    db, table = await resolve(datasette, request)
    back = page_url(datasette, db, table, request.args)
    if request.method != "POST":
        return Response.redirect(back)
    if not await datasette.permission_allowed(request.actor, REFIT_PERMISSION, (db.name, table), default=False):
        raise Forbidden(f"Refitting {table} needs the {REFIT_PERMISSION} permission")
    if not db.is_mutable:
        datasette.add_message(request, f"Refit of {table} refused: database {db.name} is served immutable "
                              "(datasette -i), so nothing can be written to it", datasette.ERROR)
        return Response.redirect(back)
    form = await request.post_vars()
    mode = form.get("mode", "full")
    if mode not in ("full", "incremental"):
        datasette.add_message(request, f"Refit mode must be full or incremental, got {mode!r}", datasette.ERROR)
        return Response.redirect(back)

    def refit(conn):
        return conn.execute("select foryou_refit(?, ?)", [table, json.dumps({"mode": mode})]).fetchone()[0]

    try:
        report = json.loads(await db.execute_write_fn(refit))
    except Exception as e:  # the write connection's error (read-only, busy, no events ...)
        datasette.add_message(request, f"Refit of {table} failed: {e}", datasette.ERROR)
    else:
        datasette.add_message(
            request,
            f"Refitted {table}: model version {report['version']} ({report['mode']}, "
            f"{report['events']} events, {report['users']} users, {report['items']} items, "
            f"{report['seconds']} s)",
            datasette.INFO,
        )
    return Response.redirect(back)
