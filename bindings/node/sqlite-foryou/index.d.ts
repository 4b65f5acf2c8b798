/** A database that loads SQLite extensions: better-sqlite3's Database, node:sqlite's DatabaseSync. */
export interface Database {
  loadExtension(path: string, ...rest: unknown[]): unknown;
}
/** The absolute path of this platform's libforyou.so (from sqlite-foryou-<platform>). */
export function getLoadablePath(): string;
/** Loads foryou into db (node:sqlite: open it with { allowExtension: true }). */
export function load(db: Database): void;
declare const _default: { getLoadablePath: typeof getLoadablePath; load: typeof load };
export default _default;
