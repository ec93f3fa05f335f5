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
