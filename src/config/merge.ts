// How environment files combine: mappings merge key by key, everything else (lists, scalars,
// null) replaces. The same rule helmfile uses for values, so a user needs to learn only one.

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
}

export function mergeDeep(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? mergeDeep(b, v) : v;
  }
  return out;
}

/** Sets a dotted path (`kserve.storage.image`) in a copy of `obj`, creating mappings on the way. */
export function setPath(obj: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const [head, ...rest] = path.split('.');
  if (head === undefined || head === '') return obj;
  const next = rest.length === 0 ? value : setPath(isPlainObject(obj[head]) ? obj[head] : {}, rest.join('.'), value);
  return { ...obj, [head]: next };
}

/** The segments of a values path through lists: `a.b[0].image` -> ['a', 'b', 0, 'image']. */
export function pathSegments(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const part of path.split('.')) {
    const m = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (!m) return [path];
    if (m[1]) out.push(m[1]);
    for (const i of m[2]!.matchAll(/\[(\d+)\]/g)) out.push(Number(i[1]));
  }
  return out;
}

/** The value at a path through lists (`containers[0].image`), if there is one. */
export function getPath(obj: unknown, path: string): unknown {
  let node = obj;
  for (const seg of pathSegments(path)) {
    if (typeof seg === 'number' ? !Array.isArray(node) : !isPlainObject(node)) return undefined;
    node = (node as Record<string | number, unknown>)[seg];
  }
  return node;
}

/** The path of each list a values path goes through: `a.b[0].c[1].image` -> ['a.b', 'a.b[0].c']. */
export function listPrefixes(path: string): string[] {
  const out: string[] = [];
  for (let i = path.indexOf('['); i !== -1; i = path.indexOf('[', i + 1)) out.push(path.slice(0, i));
  return out;
}

/**
 * Sets a path that may go through list items (`extraContainers[0].image`) in a copy of `obj`.
 * A list replaces a list whole when values merge (helm, helmfile), so a list the path enters is
 * written in full: the one already in `obj`, else a copy of `lists[<its path>]` (what the chart
 * ships there), with only the item's field changed. Without either, `missing` says what is wrong.
 */
export function setPathThroughLists(
  obj: Record<string, unknown>,
  path: string,
  value: unknown,
  lists: Record<string, unknown[]>,
  missing: (listPath: string) => Error,
): Record<string, unknown> {
  if (!path.includes('[')) return setPath(obj, path, value);
  const segs = pathSegments(path);
  const set = (node: unknown, i: number, at: string): unknown => {
    if (i === segs.length) return value;
    const seg = segs[i]!;
    if (typeof seg === 'number') {
      const base = Array.isArray(node) ? node : lists[at];
      if (!base || seg >= base.length) throw missing(at);
      const list = Array.isArray(node) ? [...node] : structuredClone(base);
      list[seg] = set(list[seg], i + 1, `${at}[${seg}]`);
      return list;
    }
    const out = isPlainObject(node) ? { ...node } : {};
    out[seg] = set(out[seg], i + 1, at ? `${at}.${seg}` : seg);
    return out;
  };
  return set(obj, 0, '') as Record<string, unknown>;
}
