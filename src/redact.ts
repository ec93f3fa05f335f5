// Secrets that ride inside URLs: the userinfo of `scheme://user:password@host/...`. Every URL
// that can be printed (errors, hints, events, --json, a tool's own stderr) goes through here.
// The ground floor: errors, exec, the OCI stack and the CLI's printer use it.

/** `scheme://` then userinfo up to the `@` that ends it (no `/`, `?`, `#` or blank in between). */
const USERINFO = /([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"'<>]+@/gi;

/** Any text with the userinfo of every URL in it replaced by `***`. */
export function redactText(text: string): string {
  return text.replace(USERINFO, '$1***@');
}

/** A URL for messages: no userinfo and no query (signed blob URLs and upload states carry secrets there). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return redactText(url).replace(/\?.*$/, '');
  }
}
