// sqlite-foryou: where the prebuilt foryou SQLite extension is, and loading it into a
// better-sqlite3 or node:sqlite database. The extension itself comes in a platform
// package (sqlite-foryou-linux-x64), an optionalDependency that npm installs only on
// its platform.
"use strict";

const { existsSync } = require("node:fs");
const { dirname, join } = require("node:path");
const { platform, arch } = require("node:process");

// platform-arch -> [package, file]; one entry per platform package that is published.
const PLATFORMS = {
  "linux-x64": ["sqlite-foryou-linux-x64", "libforyou.so"],
};

function getLoadablePath() {
  const key = `${platform}-${arch}`;
  const entry = PLATFORMS[key];
  if (!entry) {
    throw new Error(
      `sqlite-foryou: no prebuilt extension for ${key} (prebuilt: ${Object.keys(PLATFORMS).join(", ")}). ` +
        "Build it from source (make loadable) and pass its path to db.loadExtension().",
    );
  }
  const [pkg, file] = entry;
  let dir;
  try {
    dir = dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    throw new Error(
      `sqlite-foryou: the platform package ${pkg} for ${key} is not installed. It is an ` +
        "optionalDependency of sqlite-foryou: install it (npm install " + pkg + "), and check " +
        "that npm did not skip optional dependencies (--omit=optional, --no-optional).",
    );
  }
  const path = join(dir, file);
  if (!existsSync(path)) {
    throw new Error(`sqlite-foryou: ${pkg} is installed but has no ${file} (${path})`);
  }
  return path;
}

// better-sqlite3: db.loadExtension(path). node:sqlite (Node 22.5+): the DatabaseSync must be
// opened with { allowExtension: true }; then the same call.
function load(db) {
  if (!db || typeof db.loadExtension !== "function") {
    throw new TypeError("sqlite-foryou: load(db) takes a database with a loadExtension() method (better-sqlite3, or node:sqlite's DatabaseSync opened with allowExtension: true)");
  }
  db.loadExtension(getLoadablePath());
}

module.exports = { getLoadablePath, load };
