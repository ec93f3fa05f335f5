// Rendered manifests -> documents. Helm output and release YAMLs are parsed the way Kubernetes'
// Go YAML parses them (js-yaml: accepts what Go accepts, duplicate keys last-wins, no timestamps),
// one document at a time, so one bad document is reported and the others are kept.
import yaml from 'js-yaml';

/** Kubernetes-style YAML: core types plus merge keys; timestamps stay strings (as in JSON). */
// (js-yaml exports `types` at run time; its type declarations omit it)
const mergeType = (yaml as unknown as { types: { merge: yaml.Type } }).types.merge;
export const GO_YAML_SCHEMA = yaml.CORE_SCHEMA.extend({ implicit: [mergeType] });

export interface ManifestDocument {
  /** 0-based position in the stream */
  index: number;
  /** 1-based line where the document starts in its file */
  line: number;
  /** the file it came from (a path, URL or `<stdin>`), if known */
  file?: string;
  /** helm's `# Source: chart/templates/x.yaml` comment, if any */
  template?: string;
  value: unknown;
}

export interface ManifestProblem {
  index: number;
  line: number;
  file?: string;
  template?: string;
  message: string;
}

export interface ParsedManifests {
  documents: ManifestDocument[];
  problems: ManifestProblem[];
}

const SEPARATOR = /^---(?:[ \t].*)?$/;
const SOURCE_COMMENT = /^# Source: (.+)$/m;

/** Parses one YAML string the Go way; throws js-yaml's error (with its line) on bad input. */
export function parseYamlGo(text: string): unknown {
  return yaml.load(text, { schema: GO_YAML_SCHEMA, json: true });
}

/**
 * Splits a multi-document YAML stream at `---` lines and parses each document on its own.
 * Empty and comment-only documents are dropped; a document that fails to parse becomes a problem
 * naming its file, line and (for helm output) its template.
 */
export interface ParseOptions {
  /**
   * Kinds whose documents are not parsed, only named (`{apiVersion, kind, metadata: {name}}` from
   * their top-level lines): CRDs are most of the bytes of some charts and hold no image.
   */
  skipKinds?: readonly string[];
}

const TOP_KIND = /^kind:[ \t]*["']?([A-Za-z0-9]+)["']?[ \t]*$/m;
const TOP_API = /^apiVersion:[ \t]*["']?([^"'\s]+)["']?[ \t]*$/m;
const META_NAME = /^metadata:[ \t]*\n(?:[ \t]+.*\n|[ \t]*\n)*?[ \t]+name:[ \t]*["']?([^"'\s#]+)/m;

function stubOf(text: string, skip: readonly string[]): Record<string, unknown> | undefined {
  const kind = TOP_KIND.exec(text)?.[1];
  if (!kind || !skip.includes(kind)) return undefined;
  const name = META_NAME.exec(text)?.[1];
  const apiVersion = TOP_API.exec(text)?.[1];
  return { ...(apiVersion ? { apiVersion } : {}), kind, metadata: name ? { name } : {} };
}

export function parseManifests(text: string, file?: string, opts: ParseOptions = {}): ParsedManifests {
  const lines = text.split(/\r?\n/);
  const chunks: { line: number; text: string }[] = [];
  let start = 0;
  let buf: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i] ?? '';
    if (SEPARATOR.test(l)) {
      chunks.push({ line: start + 1, text: buf.join('\n') });
      buf = [];
      start = i + 1;
    } else if (l === '...') {
      // explicit document end: what follows until the next separator is outside any document
      buf.push('');
    } else {
      buf.push(l);
    }
  }
  chunks.push({ line: start + 1, text: buf.join('\n') });

  const documents: ManifestDocument[] = [];
  const problems: ManifestProblem[] = [];
  let index = 0;
  for (const chunk of chunks) {
    if (!/^[ \t]*[^#\s]/m.test(chunk.text)) continue; // empty or comments only
    const template = SOURCE_COMMENT.exec(chunk.text)?.[1]?.trim();
    const at = { index, line: chunk.line, ...(file !== undefined ? { file } : {}), ...(template ? { template } : {}) };
    index++;
    const stub = opts.skipKinds?.length ? stubOf(chunk.text, opts.skipKinds) : undefined;
    if (stub) {
      documents.push({ ...at, value: stub });
      continue;
    }
    try {
      const value = parseYamlGo(chunk.text);
      if (value === null || value === undefined) continue;
      documents.push({ ...at, value });
    } catch (e) {
      const mark = (e as { mark?: { line?: number } }).mark;
      const reason = (e as { reason?: string }).reason ?? (e instanceof Error ? e.message.split('\n')[0] : String(e));
      const line = mark?.line !== undefined ? chunk.line + mark.line : chunk.line;
      problems.push({ ...at, line, message: `YAML document ${at.index + 1} does not parse: ${reason}` });
    }
  }
  return { documents, problems };
}
