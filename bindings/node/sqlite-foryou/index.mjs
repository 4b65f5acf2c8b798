// The ES module form of index.cjs (one implementation).
import { createRequire } from "node:module";

const cjs = createRequire(import.meta.url)("./index.cjs");

export const getLoadablePath = cjs.getLoadablePath;
export const load = cjs.load;
export default { getLoadablePath, load };
