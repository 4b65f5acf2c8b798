#!/usr/bin/env python3
"""Renders docs/reference.in.md into docs/reference.md by running its SQL examples.

    python3 scripts/render_reference.py [SOURCE [OUTPUT]]    (OUTPUT "-" = stdout)

Defaults: docs/reference.in.md -> docs/reference.md. The extension is loaded from
$FORYOU_EXT (a path without ".so", as `.load` takes it; default
$PWD/target/release/libforyou) into the `sqlite3` shell ($SQLITE3, default sqlite3).

Source syntax (everything else is copied through verbatim, fenced blocks included):

  <!-- session: NAME -->   starts a fresh session: a new `sqlite3 :memory:` process
                          with its own empty temporary directory as the working
                          directory (so `ATTACH 'aux.db'` works). Text before the first
                          marker belongs to a session named "default". The line is
                          not copied to the output.
  <!-- run: PATH -->       runs the SQL file PATH (relative to the repository root) in
                          the current session; its output is not shown, and an error
                          in it fails the render. The line is not copied.
  ```sql                  runs the block in the current session (state carries over
                          between blocks of one session); the block is copied, then a
                          plain fenced block with what the shell printed (none when it
                          printed nothing). It must not error.
  ```sql error            the same, but it must print at least one error.
  ```sql errors           every statement (a statement ends at a line ending in ";")
                          must error; rendered as a table: statement | message.
                          Lines starting with "--" are left out of the table.
  ```sql norun            copied as an sql block, not run.

The shell's "Parse error near line N: MSG" / "Runtime error near line N: MSG" lines (and
the caret lines after a parse error) are printed as "Error: MSG". The shell runs without
-bail, so the statements after an error still run. Exit status 1 when a block errors
without the error marker, or succeeds with it, or when the shell cannot load the
extension.
"""

import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SENTINEL = "@@foryou-render-{}@@"
SENTINEL_RE = re.compile(r"^@@foryou-render-(\d+)@@$")
ERROR_RE = re.compile(r"^(?:Parse|Runtime) error near line \d+: (.*)$|^Error: (?:near line \d+: )?(.*)$")
DIRECTIVE_RE = re.compile(r"^<!--\s*(session|run):\s*(.*?)\s*-->\s*$")
HEADER = (
    "<!-- Generated from docs/reference.in.md by scripts/render_reference.py: edit that file,\n"
    "     then run `make reference`. Every output below is what the sqlite3 shell printed. -->\n"
)


class RenderError(Exception):
    pass


def parse(lines):
    """Splits the source into ("text", str) and exec items; returns (items, sessions)."""
    items, session, i = [], "default", 0
    sessions = {}
    while i < len(lines):
        line = lines[i]
        m = DIRECTIVE_RE.match(line)
        if m:
            kind, arg = m.groups()
            if kind == "session":
                session = f"{arg}#{len(sessions)}"
                sessions[session] = []
            else:
                path = os.path.join(ROOT, arg)
                with open(path, encoding="utf-8") as f:
                    code = f.read()
                item = {"kind": "run", "code": code, "line": i + 1, "path": arg}
                sessions.setdefault(session, []).append(item)
                items.append(("exec", item))
            i += 1
            # The directive line leaves no blank line doubled in the output.
            if i < len(lines) and not lines[i].strip() and last_text_blank(items):
                i += 1
            continue
        if line.startswith("```"):
            info = line[3:].strip().split()
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            if j == len(lines):
                raise RenderError(f"line {i + 1}: unclosed fenced block")
            body = lines[i + 1:j]
            if info and info[0] == "sql" and (len(info) == 1 or info[1] in ("error", "errors")):
                kind = "sql" if len(info) == 1 else info[1]
                item = {"kind": kind, "code": "".join(body), "line": i + 1}
                if kind == "errors":
                    item["statements"] = split_statements(body, i + 2)
                sessions.setdefault(session, []).append(item)
                items.append(("exec", item))
            elif info and info[0] == "sql" and info[1:] == ["norun"]:
                items.append(("text", "```sql\n" + "".join(body) + lines[j]))
            elif info and info[0] == "sql":
                raise RenderError(f"line {i + 1}: unknown sql block marker {' '.join(info[1:])!r}")
            else:
                items.append(("text", "".join(lines[i:j + 1])))
            i = j + 1
            continue
        items.append(("text", line))
        i += 1
    return items, sessions


def last_text_blank(items):
    """Whether the output so far ends with a blank line (run items print nothing)."""
    for kind, item in reversed(items):
        if kind == "text":
            return item.strip() == "" or item.endswith("\n\n")
        if item["kind"] != "run":
            return False
    return True


def split_statements(body, first_line):
    """The statements of an errors block: each ends at a line ending in ';'."""
    out, cur, start = [], [], None
    for n, line in enumerate(body):
        if not cur and (not line.strip() or line.lstrip().startswith("--")):
            continue
        if not cur:
            start = first_line + n
        cur.append(line)
        if line.rstrip().endswith(";"):
            out.append({"code": "".join(cur), "line": start})
            cur = []
    if cur:
        raise RenderError(f"line {start}: statement without a final ';' in an errors block")
    return out


def normalise(text):
    """The shell's error lines as "Error: MSG" (caret lines dropped); (lines, messages)."""
    src = text.split("\n")
    out, errors, i = [], [], 0
    while i < len(src):
        line = src[i]
        m = ERROR_RE.match(line)
        if m:
            msg = m.group(1) if m.group(1) is not None else m.group(2)
            out.append(f"Error: {msg}")
            errors.append(msg)
            if line.startswith("Parse error"):
                for k in (1, 2):
                    if i + k < len(src) and "^--- error here" in src[i + k]:
                        i += k
                        break
            i += 1
            continue
        out.append(line)
        i += 1
    while out and not out[-1].strip():
        out.pop()
    return out, errors


def run_session(name, items, ext, sqlite3):
    """Runs one session's blocks in one shell process; fills item["output"], item["errors"]."""
    script, segments = [], []
    for item in items:
        units = item["statements"] if item["kind"] == "errors" else [item]
        for unit in units:
            n = len(segments)
            segments.append(unit)
            script.append(f".print {SENTINEL.format(n)}\n")
            code = unit["code"]
            script.append(code if code.endswith("\n") else code + "\n")
    with tempfile.TemporaryDirectory(prefix="foryou-reference-") as cwd:
        proc = subprocess.run(
            [sqlite3, "-batch", "-cmd", f".load {ext}", ":memory:"],
            input="".join(script), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="backslashreplace", cwd=cwd, timeout=300,
        )
    current, chunks = None, {}
    preamble = []
    for line in proc.stdout.split("\n"):
        m = SENTINEL_RE.match(line)
        if m:
            current = int(m.group(1))
            chunks[current] = []
        elif current is None:
            preamble.append(line)
        else:
            chunks[current].append(line)
    if any(line.strip() for line in preamble) or len(chunks) != len(segments):
        raise RenderError(
            f"session {name.split('#')[0]}: the shell did not run the blocks "
            f"(FORYOU_EXT={ext}):\n"
            + ("\n".join(preamble).strip() or proc.stdout[-2000:])
        )
    for n, unit in enumerate(segments):
        unit["output"], unit["errors"] = normalise("\n".join(chunks[n]))


def check(item, problems):
    kind = item["kind"]
    where = f"line {item['line']}" + (f" ({item['path']})" if kind == "run" else "")
    if kind in ("sql", "run") and item["errors"]:
        problems.append(f"{where}: unexpected error: {item['errors'][0]}")
    elif kind == "error" and not item["errors"]:
        problems.append(f"{where}: a block marked `error` ran without an error")
    elif kind == "errors":
        for st in item["statements"]:
            if not st["errors"]:
                problems.append(f"line {st['line']}: statement in an errors block ran without an "
                                f"error: {' '.join(st['code'].split())}")
            elif len(st["errors"]) > 1:
                problems.append(f"line {st['line']}: one statement printed several errors")


def cell(text):
    return text.replace("|", "\\|")


def render(items):
    out = [HEADER]
    for kind, item in items:
        if kind == "text":
            out.append(item)
        elif item["kind"] == "run":
            continue
        elif item["kind"] == "errors":
            out.append("| statement | message |\n|---|---|\n")
            for st in item["statements"]:
                sql = " ".join(st["code"].split())
                out.append(f"| `{cell(sql)}` | `{cell(st['errors'][0] if st['errors'] else '')}` |\n")
        else:
            out.append("```sql\n" + item["code"] + "```\n")
            if item["output"]:
                out.append("```\n" + "\n".join(item["output"]) + "\n```\n")
    return "".join(out)


def registered_objects(ext, sqlite3):
    """The SQL functions and modules the extension adds: what pragma_function_list and
    pragma_module_list show with it loaded and not without it."""
    query = ("SELECT 'function', name FROM pragma_function_list "
             "UNION SELECT 'module', name FROM pragma_module_list;\n")
    listed = []
    for cmd in ([], ["-cmd", f".load {ext}"]):
        proc = subprocess.run([sqlite3, "-batch", *cmd, ":memory:"], input=query,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=60)
        if proc.returncode != 0:
            raise RenderError(f"listing the SQL objects failed: {proc.stdout.strip()}")
        listed.append(set(proc.stdout.split("\n")))
    return sorted(line.split("|", 1)[1] for line in listed[1] - listed[0] if "|" in line)


def undocumented(objects, lines):
    """Objects that no section heading (`## `) of the reference names (sqlite-vec's check
    of pragma_function_list against its docs)."""
    headings = " ".join(line for line in lines if line.startswith("## "))
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", headings))
    return [name for name in objects if name not in words]


def main(argv):
    src = argv[1] if len(argv) > 1 else os.path.join(ROOT, "docs/reference.in.md")
    dst = argv[2] if len(argv) > 2 else os.path.join(ROOT, "docs/reference.md")
    ext = os.environ.get("FORYOU_EXT") or os.path.join(os.getcwd(), "target/release/libforyou")
    sqlite3 = os.environ.get("SQLITE3", "sqlite3")
    try:
        with open(src, encoding="utf-8") as f:
            items, sessions = parse(f.readlines())
        for name, sitems in sessions.items():
            run_session(name, sitems, ext, sqlite3)
    except (RenderError, OSError, subprocess.SubprocessError) as e:
        print(f"render_reference: {src}: {e}", file=sys.stderr)
        return 1
    problems = []
    try:
        with open(src, encoding="utf-8") as f:
            missing = undocumented(registered_objects(ext, sqlite3), f.readlines())
    except (RenderError, OSError, subprocess.SubprocessError) as e:
        print(f"render_reference: {src}: {e}", file=sys.stderr)
        return 1
    for name in missing:
        problems.append(f"the extension registers {name}, which no heading documents")
    for kind, item in items:
        if kind == "exec":
            check(item, problems)
    if problems:
        for p in problems:
            print(f"render_reference: {src}: {p}", file=sys.stderr)
        return 1
    text = render(items)
    if dst == "-":
        sys.stdout.write(text)
    else:
        with open(dst, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
