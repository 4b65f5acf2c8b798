// The installed npm packages as a user has them: `npm install sqlite-foryou better-sqlite3`,
// then load(db). Run by tests/dist/run.sh (make test-dist) in a temporary project.
// Usage: node check.cjs VERSION          (both packages installed)
//        node check.cjs missing-platform  (sqlite-foryou-linux-x64 removed)
"use strict";

const assert = require("node:assert/strict");
const { existsSync } = require("node:fs");
const foryou = require("sqlite-foryou");

function feed(db) {
  // The same events as tests/dist/check.py, the README's Quick start: user u loves genre u % 3.
  db.exec("CREATE VIRTUAL TABLE feed USING foryou(confidence = linear, alpha = 10, skip_ratio = 0.5)");
  const insert = db.prepare("INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (?, ?, ?, ?)");
  const watched = new Set();
  db.exec("BEGIN");
  for (let u = 1; u <= 60; u++) {
    for (let n = 1; n <= 30; n++) {
      const item = 1 + ((u * 17 + n * 7) % 90);
      const duration = 10 + ((item * 37) % 50);
      insert.run(u, item, (item % 3 === u % 3 ? 1.5 : 0.1) * duration, duration);
      if (u === 1) watched.add(item);
    }
  }
  db.exec("COMMIT");
  const report = JSON.parse(Object.values(db.prepare("SELECT foryou_refit('feed') AS r").get())[0]);
  assert.deepEqual([report.events, report.users, report.items], [1800, 60, 90]);
  const top = db.prepare("SELECT item_id, score FROM recommend(?, 10)").all(1);
  assert.equal(top.length, 10);
  for (const row of top) assert.ok(!watched.has(row.item_id), `watched ${row.item_id} recommended`);
  for (let r = 1; r < top.length; r++) assert.ok(top[r - 1].score >= top[r].score);
  const ids = top.map((row) => row.item_id);
  assert.ok(ids.every((i) => i % 3 === 1), JSON.stringify(top));
  assert.deepEqual(ids.slice(0, 5), [55, 4, 73, 76, 7]);
  return ids;
}

function main(version) {
  const path = foryou.getLoadablePath();
  assert.match(path, /node_modules\/sqlite-foryou-linux-x64\/libforyou\.so$/);
  assert.ok(existsSync(path));

  const Database = require("better-sqlite3");
  const db = new Database(":memory:");
  foryou.load(db);
  assert.equal(db.prepare("SELECT foryou_version() AS v").get().v, version);
  const top = feed(db);

  // getLoadablePath() as db.loadExtension() takes it, the same feed.
  const other = new Database(":memory:");
  other.loadExtension(foryou.getLoadablePath());
  assert.deepEqual(feed(other), top);
  assert.throws(() => foryou.load({}), /loadExtension\(\) method/);

  // node:sqlite (Node 22.5+; behind --experimental-sqlite before 22.13).
  let sqlite = null;
  try {
    sqlite = require("node:sqlite");
  } catch {
    console.log(`dist: node:sqlite is not in Node ${process.version}: tested with better-sqlite3 only`);
  }
  if (sqlite) {
    const ndb = new sqlite.DatabaseSync(":memory:", { allowExtension: true });
    foryou.load(ndb);
    assert.deepEqual(feed(ndb), top);
    console.log("dist: node:sqlite loads it too");
  }
  console.log(`dist: npm sqlite-foryou on Node ${process.version}, better-sqlite3 ` +
    `${require("better-sqlite3/package.json").version}: load(db), getLoadablePath(), recommend(1, 10) = ${JSON.stringify(top)}`);
}

function missingPlatform() {
  assert.throws(() => foryou.getLoadablePath(),
    /the platform package sqlite-foryou-linux-x64 for linux-x64 is not installed/);
  console.log("dist: without sqlite-foryou-linux-x64, getLoadablePath() names the platform package");
}

if (process.argv[2] === "missing-platform") missingPlatform();
else main(process.argv[2]);
