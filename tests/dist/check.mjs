// The ES module entry of sqlite-foryou gives the same functions as the CommonJS one.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import foryouDefault, { getLoadablePath, load } from "sqlite-foryou";

const cjs = createRequire(import.meta.url)("sqlite-foryou");
assert.equal(getLoadablePath(), cjs.getLoadablePath());
assert.equal(load, cjs.load);
assert.equal(foryouDefault.getLoadablePath, cjs.getLoadablePath);
const Database = createRequire(import.meta.url)("better-sqlite3");
const db = new Database(":memory:");
load(db);
assert.equal(db.prepare("SELECT foryou_version() AS v").get().v, process.argv[2]);
console.log("dist: import { load, getLoadablePath } from \"sqlite-foryou\" works (ESM)");
