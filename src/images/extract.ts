// Manifests -> image findings. Pure: parsed documents and rules in, findings out.
//
// Generic over every kind of resource, with three strengths of evidence:
//   definite  a container's `image`, or an image a rule composes: a malformed value is an error
//   strong    container args (`--x-image=REF`, `--x-image REF`) and env (`*_IMAGE=REF`): kept even
//             as a bare name (`nginx`), skipped with a reason when not a reference
//   weak      any field whose name ends in "image" (`image`, `queue-sidecar-image`, `defaultJobImage`,
//             `proxyImage`), in custom resources, ConfigMap data and JSON/YAML embedded in strings,
//             including references split across keys (repository + tag/version, registry/hub);
//             a bare name (`proxyv2`) is not taken for an image.
// Every candidate that is not listed is kept in `excluded` with the reason (placeholder, template
// marker, rule, test hook, not a reference), so a missing image can be explained.
import { isSealiftError } from '../errors.ts';
import type { ManifestDocument } from '../render/manifests.ts';
import { parseYamlGo } from '../render/manifests.ts';
import {
  formatImageReference,
  normalizeImageReference,
  parseImageReference,
  withDefaultTag,
} from '../oci/reference.ts';
import type { Condition, ImageRule, ResourceIdentity, RuleSet } from './rules.ts';
import { fieldTestMatches, templateFields } from './rules.ts';

export type Via = 'container' | 'image-field' | 'split-fields' | 'arg' | 'env' | 'value' | 'text' | 'rule';

/** Where an image (or a rejected candidate) was found: the `why` of every list entry. */
export interface Origin {
  release: string;
  kind: string;
  name: string;
  namespace?: string;
  /** dotted field path; embedded JSON/YAML continues it; `@L<n>` is a line in unparsable text */
  path: string;
  via: Via;
  /** helm's template file (`# Source:`) or the manifest file */
  source?: string;
  /** the rule that composed, excluded or annotated it */
  rule?: string;
  /** the values path that moves it into the site registry (inferred or written by hand) */
  knob?: string;
}

export interface ImageFinding {
  /** normalized: registry/repository[:tag][@digest], `:latest` added when neither is given */
  reference: string;
  origin: Origin;
  /** a rule says no chart value can point this image elsewhere */
  knobless?: { rule: string; description: string };
}

export interface ExcludedCandidate {
  value: string;
  origin: Origin;
  reason: string;
}

export interface SkippedDocument {
  release: string;
  kind: string;
  name: string;
  reason: string;
}

export interface ExtractionProblem {
  severity: 'error' | 'warning';
  code: 'REF_INVALID' | 'YAML_INVALID' | 'RULE_UNRESOLVED';
  message: string;
  origin?: Partial<Origin>;
}

export interface ExtractionResult {
  findings: ImageFinding[];
  excluded: ExcludedCandidate[];
  skipped: SkippedDocument[];
  problems: ExtractionProblem[];
}

export interface ExtractContext {
  release: string;
  chart?: string;
  rules: RuleSet;
}

type Strength = 'definite' | 'strong' | 'weak';
type Segment = string | number | { line: number };

/** Kinds that hold no image (CRD schema text only): rendering may leave them unparsed (parseManifests skipKinds). */
export const IMAGELESS_KINDS: readonly string[] = ['CustomResourceDefinition'];

const CONTAINER_KEYS = new Set(['containers', 'initContainers', 'ephemeralContainers']);
const ARG_KEYS = new Set(['args', 'command']);
const TEST_HOOKS = new Set(['test', 'test-success', 'test-failure']);
/** Keys that make an object with an `image` a container, whatever its list is called (Tekton steps, Argo templates). */
// (not `resources`, `env` or `imagePullPolicy`: Helm values objects have those beside a bare `image: proxyv2`)
const CONTAINER_HINTS = [
  'command',
  'args',
  'script',
  'workingDir',
  'volumeMounts',
  'envFrom',
  'livenessProbe',
  'readinessProbe',
  'startupProbe',
];

function looksLikeContainer(o: Record<string, unknown>): boolean {
  return CONTAINER_HINTS.some((k) => k in o);
}
const TEMPLATE_MARKER = /\{\{|\}\}|\$\{|\$\(|<%|%>/;
const MAX_EMBEDDED = 4 * 1024 * 1024;

/** `queue-sidecar-image` -> [queue, sidecar, image]; `defaultJobImage` -> [default, job, image]. */
export function keyWords(key: string): string[] {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w) => w.toLowerCase());
}

/** A key whose last word is "image": `image`, `proxyImage`, `queue-sidecar-image`, `FOO_IMAGE`. */
export function isImageKey(key: string): boolean {
  const w = keyWords(key);
  const last = w.at(-1);
  return last === 'image' || (w.at(-2) === 'image' && IMAGE_KEY_SUFFIXES.has(last ?? ''));
}

/** `imageRef`, `imageUrl`, `image_uri`, `imageName`: still an image (a bare name is still not taken). */
const IMAGE_KEY_SUFFIXES = new Set(['ref', 'reference', 'url', 'uri', 'name']);

function isImageListKey(key: string): boolean {
  return keyWords(key).at(-1) === 'images';
}

export function formatPath(segments: readonly Segment[]): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (typeof s === 'object') out += `@L${s.line}`;
    else out += out === '' ? s : `.${s}`;
  }
  return out;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const scalarString = (v: unknown): string | undefined =>
  typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'bigint' ? String(v) : undefined;

/** One document's walk: identity, applicable rules, and where results go. */
class DocumentWalk {
  readonly consumed = new Map<string, string>();
  /** > 0 while walking JSON/YAML embedded in a string */
  private embedded = 0;
  readonly rules: ImageRule[];
  readonly id: ResourceIdentity;
  readonly source: string | undefined;
  readonly out: ExtractionResult;

  constructor(id: ResourceIdentity, source: string | undefined, rules: RuleSet, out: ExtractionResult) {
    this.id = id;
    this.source = source;
    this.out = out;
    this.rules = rules.rules.filter((r) => r.match.test(id));
  }

  origin(path: readonly Segment[] | string, via: Via, rule?: string): Origin {
    return {
      release: this.id.release,
      kind: this.id.kind,
      name: this.id.name,
      ...(this.id.namespace ? { namespace: this.id.namespace } : {}),
      path: typeof path === 'string' ? path : formatPath(path),
      via,
      ...(this.source ? { source: this.source } : {}),
      ...(rule ? { rule } : {}),
    };
  }

  exclude(value: string, origin: Origin, reason: string): void {
    this.out.excluded.push({ value, origin, reason });
  }

  /** Decides whether one candidate value is an image, and records the outcome. */
  consider(raw: string, path: readonly Segment[] | string, via: Via, strength: Strength, rule?: string): void {
    const value = raw.trim();
    if (value === '') return;
    const origin = this.origin(path, via, rule);
    for (const r of this.rules) {
      if (r.type === 'exclude' && fieldTestMatches(r.test, origin.path, value)) {
        return this.exclude(value, { ...origin, rule: r.id }, `rule ${r.id}: ${r.description}`);
      }
    }
    const consumer = this.consumed.get(origin.path);
    if (consumer && via !== 'rule') {
      return this.exclude(value, { ...origin, rule: consumer }, `a part of the image that rule ${consumer} composes`);
    }
    if (TEMPLATE_MARKER.test(value))
      return this.exclude(value, origin, 'a template placeholder, filled in at run time');
    let normalized: string;
    try {
      const strict = parseImageReference(value, describe(origin));
      if (
        strength === 'weak' &&
        !strict.registry &&
        !strict.repository.includes('/') &&
        !strict.tag &&
        !strict.digest
      ) {
        return this.exclude(
          value,
          origin,
          'a bare name without registry, path or tag: not taken for an image (part of a split reference?)',
        );
      }
      normalized = formatImageReference(withDefaultTag(normalizeImageReference(value, describe(origin))));
    } catch (e) {
      if (!isSealiftError(e)) throw e;
      if (strength === 'definite') {
        this.out.problems.push({ severity: 'error', code: 'REF_INVALID', message: e.message, origin });
        return;
      }
      return this.exclude(
        value,
        origin,
        `not an image reference (${e.message.replace(/^invalid image reference "[^"]*" \([^)]*\): /, '')})`,
      );
    }
    const finding: ImageFinding = { reference: normalized, origin };
    for (const r of this.rules) {
      if (r.type === 'knobless' && fieldTestMatches(r.test, origin.path, value)) {
        finding.knobless = { rule: r.id, description: r.description };
        break;
      }
    }
    this.out.findings.push(finding);
  }

  walk(node: unknown, path: Segment[]): void {
    if (Array.isArray(node)) {
      node.forEach((item, i) => this.walk(item, [...path, i]));
      return;
    }
    if (!isObject(node)) return;
    for (const [key, v] of Object.entries(node)) {
      const p = [...path, key];
      if (CONTAINER_KEYS.has(key) && Array.isArray(v)) {
        v.forEach((c, i) => (isObject(c) ? this.container(c, [...p, i]) : this.walk(c, [...p, i])));
      } else if (key === 'container' && isObject(v) && typeof v.image === 'string') {
        this.container(v, p);
      } else if (isImageKey(key)) {
        this.imageField(node, key, v, p);
      } else if (isImageListKey(key) && Array.isArray(v) && v.every((x) => typeof x === 'string')) {
        v.forEach((x, i) => this.consider(x as string, [...p, i], 'image-field', 'weak'));
      } else {
        this.field(key, v, p);
      }
    }
  }

  container(c: Record<string, unknown>, path: Segment[]): void {
    for (const [key, v] of Object.entries(c)) {
      const p = [...path, key];
      const s = key === 'image' ? scalarString(v) : undefined;
      // a container of the resource itself must hold a valid reference; one inside text a
      // resource carries (a pod template in ConfigMap data) may be a template of some other tool
      if (s !== undefined) this.consider(s, p, 'container', this.embedded > 0 ? 'strong' : 'definite');
      else this.field(key, v, p);
    }
  }

  /** Any other field: args and env lists, strings (maybe embedded JSON/YAML), nested objects. */
  private field(key: string, v: unknown, p: Segment[]): void {
    if (ARG_KEYS.has(key) && Array.isArray(v)) this.args(v, p);
    else if (key === 'env' && Array.isArray(v)) this.env(v, p);
    else if (typeof v === 'string' && isQualifiedReference(v)) this.consider(v, p, 'value', 'weak');
    else if (typeof v === 'string') this.text(v, p);
    else this.walk(v, p);
  }

  /** `--x-image=REF`, or `--x-image` followed by `REF`; shell snippets in one arg are scanned as text. */
  args(list: unknown[], path: Segment[]): void {
    let taken = -1; // the value of `--x-image VALUE`, already considered
    list.forEach((a, i) => {
      if (typeof a !== 'string' || i === taken) return;
      const m = /^--?([A-Za-z0-9][\w.-]*)=(.*)$/s.exec(a);
      if (m) {
        if (isImageKey(m[1] ?? '')) this.consider(m[2] ?? '', [...path, i], 'arg', 'strong');
        else if (isQualifiedReference(m[2] ?? '')) this.consider(m[2] ?? '', [...path, i], 'arg', 'weak'); // --prometheus-config-reloader=quay.io/...:v1
        return;
      }
      const flag = /^--?([A-Za-z0-9][\w.-]*)$/.exec(a);
      const next = list[i + 1];
      if (flag && isImageKey(flag[1] ?? '') && typeof next === 'string' && !next.startsWith('-')) {
        this.consider(next, [...path, i + 1], 'arg', 'strong');
        taken = i + 1;
        return;
      }
      if (isQualifiedReference(a)) this.consider(a, [...path, i], 'arg', 'weak');
      else if (/\s/.test(a)) this.text(a, [...path, i]);
    });
  }

  env(list: unknown[], path: Segment[]): void {
    list.forEach((e, i) => {
      if (!isObject(e)) return;
      const name = scalarString(e.name);
      const value = scalarString(e.value);
      if (name !== undefined && value !== undefined && isImageKey(name)) {
        this.consider(value, [...path, i, 'value'], 'env', 'strong');
      } else if (name !== undefined && value !== undefined && keyWords(name).includes('image')) {
        // RELATED_IMAGE_PROXY (operators), but also IMAGE_PULL_SECRET: only full references count
        this.consider(value, [...path, i, 'value'], 'env', 'weak');
      } else if (value !== undefined && isQualifiedReference(value)) {
        this.consider(value, [...path, i, 'value'], 'env', 'weak');
      } else {
        this.walk(e, [...path, i]);
      }
    });
  }

  /** A field named like an image: a string (maybe split across sibling keys), an object, or a list. */
  imageField(parent: Record<string, unknown>, key: string, v: unknown, path: Segment[]): void {
    const s = scalarString(v);
    if (s !== undefined) {
      const split = composeSplit(parent, key, s);
      if (split)
        this.consider(
          split.reference,
          formatPath(path.slice(0, -1)) + `.{${[key, ...split.keys].join(',')}}`,
          'split-fields',
          'weak',
        );
      else if (key === 'image' && looksLikeContainer(parent)) this.consider(s, path, 'container', 'strong');
      else this.consider(s, path, 'image-field', 'weak');
    } else if (isObject(v)) {
      const composed = composeObject(v);
      if (composed)
        this.consider(composed.reference, formatPath(path) + `.{${composed.keys.join(',')}}`, 'split-fields', 'weak');
      else this.walk(v, path);
    } else if (Array.isArray(v)) {
      v.forEach((x, i) =>
        typeof x === 'string' ? this.consider(x, [...path, i], 'image-field', 'weak') : this.walk(x, [...path, i]),
      );
    }
  }

  /** Strings can hold JSON or YAML (ConfigMap data, annotations): parse and walk on; else scan lines. */
  text(s: string, path: Segment[]): void {
    const worthReading = (t: string) => /image/i.test(t) || QUALIFIED_INSIDE.test(t);
    if (s.length > MAX_EMBEDDED || !worthReading(s)) return;
    const embedded = parseEmbedded(s);
    if (embedded !== undefined) {
      this.embedded++;
      try {
        this.walk(embedded, path);
      } finally {
        this.embedded--;
      }
      return;
    }
    const lines = s.split('\n');
    lines.forEach((line, i) => {
      if (!worthReading(line)) return;
      const at = [...path, { line: i + 1 }];
      const kv =
        /^\s*(?:-\s+)?["']?([A-Za-z0-9_./-]+)["']?\s*[:=]\s*(?:"([^"]*)"|'([^']*)'|([^\s"',]*))\s*,?\s*(?:#.*)?$/.exec(
          line,
        );
      // `key value` lines (spark-defaults.conf: spark.kubernetes.container.image apache/spark:3.5.0)
      const spaced = kv ? undefined : /^\s*([A-Za-z0-9_./-]+)\s+["']?([^\s"']+)["']?\s*$/.exec(line);
      if (spaced && isImageKey(spaced[1] ?? '')) {
        this.consider(spaced[2] ?? '', [...at, spaced[1] ?? ''], 'text', 'weak');
        return;
      }
      if (kv && (isImageKey(kv[1] ?? '') || isQualifiedReference(kv[2] ?? kv[3] ?? kv[4] ?? ''))) {
        this.consider(kv[2] ?? kv[3] ?? kv[4] ?? '', [...at, kv[1] ?? ''], 'text', 'weak');
        return;
      }
      // inline JSON-ish pairs: { "image": "x", ... }
      for (const m of line.matchAll(/"([A-Za-z0-9_./-]+)"\s*:\s*"([^"]*)"/g)) {
        if (isImageKey(m[1] ?? '')) this.consider(m[2] ?? '', [...at, m[1] ?? ''], 'text', 'weak');
      }
      for (const m of line.matchAll(/(?:^|[\s"'[,])--?([A-Za-z0-9][\w.-]*)=["']?([^\s"',\]]+)/g)) {
        if (isImageKey(m[1] ?? '')) this.consider(m[2] ?? '', [...at, `--${m[1]}`], 'arg', 'strong');
      }
    });
  }

  /** Rules that compose an injected image from fields of this resource. */
  injections(doc: Record<string, unknown>): void {
    for (const r of this.rules) {
      if (r.type === 'add') {
        // images an operator installs when this resource exists (unless it is told otherwise)
        if (!conditionsHold(r, doc)) continue;
        r.images.forEach((a, i) => {
          if (conditionsHold(a, doc)) this.consider(a.image, `(rule ${r.id}: images[${i}])`, 'rule', 'definite', r.id);
        });
        continue;
      }
      if (r.type !== 'inject') continue;
      const unresolved = (why: string) =>
        this.out.problems.push({
          severity: 'warning',
          code: 'RULE_UNRESOLVED',
          message: `rule ${r.id} (${r.where}): ${this.id.kind} ${this.id.name} ${why}`,
          origin: this.origin(r.from, 'rule', r.id),
        });
      const base = resolvePath(doc, r.from);
      if (base === undefined) {
        unresolved(`has no field ${r.from}`);
        continue;
      }
      for (const f of r.consumes) this.consumed.set(`${r.from}.${f}`, r.id);
      let composed: string | undefined;
      let used: string[] = [];
      for (const t of r.images) {
        if (!conditionsHold(t, base)) continue;
        composed = fillTemplate(t.template, base);
        used = templateFields(t.template);
        if (composed !== undefined) break;
      }
      if (composed === undefined) {
        unresolved(`lacks the fields of ${r.images.map((t) => t.template).join(' | ')} under ${r.from}`);
        continue;
      }
      this.consider(composed, `${r.from}.{${used.join(',')}}`, 'rule', 'definite', r.id);
    }
  }
}

/** A registry-qualified, tagged reference somewhere in a text (a cheap filter before reading it line by line). */
const QUALIFIED_INSIDE = /[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?::\d+)?\/[^\s"',]+(?::[\w][\w.-]*|@sha256:[0-9a-f]{64})/;
const QUALIFIED_SHAPE =
  /^(?:[A-Za-z0-9-]+\.[A-Za-z0-9.-]+|[A-Za-z0-9.-]+:\d+|localhost|\[[0-9a-fA-F:]+\](?::\d+)?)\/\S+(?::[\w][\w.-]*|@sha256:[0-9a-f]{64})$/;

/**
 * A value that can only be an image, whatever its key: a registry host (with a dot or a port), a
 * repository path, and a tag or digest (`quay.io/org/reloader:v0.73.0`). Such values are taken
 * from any field, arg or env var; bare names and host-less paths need an image-named key.
 */
export function isQualifiedReference(s: string): boolean {
  if (s.length > 512 || !QUALIFIED_SHAPE.test(s)) return false;
  try {
    const r = parseImageReference(s);
    return r.registry !== '' && (r.tag !== undefined || r.digest !== undefined);
  } catch {
    return false;
  }
}

function describe(o: Origin): string {
  return `release ${o.release}, ${o.kind} ${o.namespace ? `${o.namespace}/` : ''}${o.name}, ${o.path}`;
}

/** A string holding a JSON or YAML object/list, else undefined. */
function parseEmbedded(s: string): unknown {
  const t = s.trim();
  const looksJson = t.startsWith('{') || t.startsWith('[');
  const looksYaml = s.includes('\n') && /^\s*(?:-\s+)?["']?[\w.-]+["']?\s*:(?:\s|$)/m.test(s);
  if (!looksJson && !looksYaml) return undefined;
  if (looksJson) {
    try {
      const v: unknown = JSON.parse(t);
      if (typeof v === 'object' && v !== null) return v;
    } catch {
      // not strict JSON: YAML below accepts JSON with comments-free relaxations
    }
  }
  try {
    const v = parseYamlGo(s);
    return typeof v === 'object' && v !== null ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Dotted path through objects; a string on the way is parsed as embedded JSON/YAML. */
export function resolvePath(root: unknown, path: string): unknown {
  let node: unknown = root;
  for (const seg of path.split('.').filter(Boolean)) {
    if (typeof node === 'string') node = parseEmbedded(node);
    if (!isObject(node)) return undefined;
    node = node[seg];
  }
  if (typeof node === 'string') return parseEmbedded(node) ?? node;
  return node;
}

/** `when` holds and `unless` does not, for fields under `base` (a missing field reads as ""). */
export function conditionsHold(x: { when?: Condition[]; unless?: Condition[] }, base: unknown): boolean {
  const value = (c: Condition) => {
    const v = resolvePath(base, c.field);
    return typeof v === 'boolean' ? String(v) : (scalarString(v) ?? '');
  };
  return (x.when ?? []).every((c) => c.test(value(c))) && !(x.unless ?? []).some((c) => c.test(value(c)));
}

/** Fills `{a.b}` placeholders from `base`; undefined if any is missing or empty. */
export function fillTemplate(template: string, base: unknown): string | undefined {
  let missing = false;
  const out = template.replace(/\{([^{}]+)\}/g, (_, f: string) => {
    const v = scalarString(resolvePath(base, f.trim()));
    if (v === undefined || v.trim() === '') missing = true;
    return v?.trim() ?? '';
  });
  return missing ? undefined : out;
}

const TAG_WORDS = new Set(['tag', 'version']);

function hasTagOrDigest(ref: string): boolean {
  try {
    const r = parseImageReference(ref);
    return r.tag !== undefined || r.digest !== undefined;
  } catch {
    return true; // not ours to compose; consider() explains why it is not an image
  }
}

/** `{image: kserve/art-explainer, defaultImageVersion: v0.15.2}` -> `kserve/art-explainer:v0.15.2`. */
export function composeSplit(
  parent: Record<string, unknown>,
  key: string,
  value: string,
): { reference: string; keys: string[] } | undefined {
  if (hasTagOrDigest(value)) return undefined;
  const keys: string[] = [];
  const keyPrefix = keyWords(key).slice(0, -1).join(' ');
  const tagKey = Object.keys(parent)
    .filter((k) => {
      const w = keyWords(k);
      if (!TAG_WORDS.has(w.at(-1) ?? '')) return false;
      return w.length === 1 || w.includes('image') || w.slice(0, -1).join(' ') === keyPrefix;
    })
    .sort((a, b) => rankTagKey(a) - rankTagKey(b))[0];
  // `repository` beside `image` is a prefix (NVIDIA ClusterPolicy: repository nvcr.io/nvidia, image driver)
  const registryKey = ['registry', 'hub', 'repository'].find(
    (k) => k !== key && typeof parent[k] === 'string' && parent[k] !== '',
  );
  const digest = typeof parent.digest === 'string' && parent.digest !== '' ? parent.digest : undefined;
  const tag = tagKey !== undefined ? scalarString(parent[tagKey]) : undefined;
  if (!tag && !digest) return undefined;
  let reference = value;
  if (registryKey && !firstComponentIsDomain(value)) {
    reference = `${String(parent[registryKey]).replace(/\/+$/, '')}/${value}`;
    keys.push(registryKey);
  }
  if (tag) {
    // `version: sha256:...` is a digest: joined with @, as `repo:sha256:...` is no reference
    reference += /^sha256:[0-9a-f]{64}$/.test(tag) ? `@${tag}` : `:${tag}`;
    keys.push(tagKey!);
  }
  if (digest && digest !== tag) {
    reference += `@${digest}`;
    keys.push('digest');
  }
  return { reference, keys };
}

function rankTagKey(k: string): number {
  const w = keyWords(k);
  return (w.at(-1) === 'tag' ? 0 : 2) + (w.length === 1 ? 0 : 1);
}

function firstComponentIsDomain(ref: string): boolean {
  const i = ref.indexOf('/');
  if (i === -1) return false;
  const first = ref.slice(0, i);
  return first.includes('.') || first.includes(':') || first === 'localhost';
}

/** `image: {registry, repository, tag, digest}` (Helm values embedded in a resource). */
export function composeObject(o: Record<string, unknown>): { reference: string; keys: string[] } | undefined {
  const repoKey = ['repository', 'repo', 'name'].find((k) => typeof o[k] === 'string' && o[k] !== '');
  if (!repoKey) return undefined;
  const parts = composeSplit({ ...o, image: o[repoKey] }, 'image', o[repoKey] as string);
  if (!parts) {
    return hasTagOrDigest(o[repoKey] as string) ? { reference: o[repoKey] as string, keys: [repoKey] } : undefined;
  }
  return { reference: parts.reference, keys: [repoKey, ...parts.keys] };
}

function identityOf(doc: Record<string, unknown>, ctx: ExtractContext): ResourceIdentity {
  const meta = isObject(doc.metadata) ? doc.metadata : {};
  return {
    kind: typeof doc.kind === 'string' ? doc.kind : '(no kind)',
    name:
      typeof meta.name === 'string'
        ? meta.name
        : typeof meta.generateName === 'string'
          ? `${meta.generateName}*`
          : '(no name)',
    ...(typeof meta.namespace === 'string' ? { namespace: meta.namespace } : {}),
    ...(typeof doc.apiVersion === 'string' ? { apiVersion: doc.apiVersion } : {}),
    ...(ctx.chart !== undefined ? { chart: ctx.chart } : {}),
    release: ctx.release,
  };
}

function isTestHook(doc: Record<string, unknown>): boolean {
  const meta = isObject(doc.metadata) ? doc.metadata : {};
  const ann = isObject(meta.annotations) ? meta.annotations : {};
  const hook = ann['helm.sh/hook'];
  return typeof hook === 'string' && hook.split(',').some((h) => TEST_HOOKS.has(h.trim()));
}

function extractOne(
  doc: Record<string, unknown>,
  source: string | undefined,
  ctx: ExtractContext,
  out: ExtractionResult,
): void {
  const id = identityOf(doc, ctx);
  if (id.kind.endsWith('List') && Array.isArray(doc.items)) {
    for (const item of doc.items) if (isObject(item)) extractOne(item, source, ctx, out);
    return;
  }
  if (IMAGELESS_KINDS.includes(id.kind)) {
    out.skipped.push({
      release: ctx.release,
      kind: id.kind,
      name: id.name,
      reason: 'a CRD: its schema text describes fields, it pulls no image',
    });
    return;
  }
  if (isTestHook(doc)) {
    const inner: ExtractionResult = { findings: [], excluded: [], skipped: [], problems: [] };
    const w = new DocumentWalk(id, source, ctx.rules, inner);
    w.injections(doc);
    w.walk(doc, []);
    for (const f of inner.findings)
      out.excluded.push({
        value: f.reference,
        origin: f.origin,
        reason: 'a chart test hook (helm.sh/hook: test): helm test runs it, an install does not',
      });
    out.excluded.push(...inner.excluded);
    return;
  }
  const w = new DocumentWalk(id, source, ctx.rules, out);
  const readable = id.kind === 'Secret' ? withDecodedData(doc) : doc;
  w.injections(readable);
  w.walk(readable, []);
}

/** A Secret with its base64 `data` values decoded where they are text (charts keep config there too). */
function withDecodedData(doc: Record<string, unknown>): Record<string, unknown> {
  if (!isObject(doc.data)) return doc;
  const data: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(doc.data)) {
    if (typeof v !== 'string') continue;
    const text = Buffer.from(v, 'base64').toString('utf8');
    data[k] = !text.includes('\uFFFD') && !/[\u0000-\u0008\u000e-\u001f]/.test(text) ? text : v;
  }
  return { ...doc, data };
}

/** Finds every image the documents make a cluster pull. */
export function findImages(documents: readonly ManifestDocument[], ctx: ExtractContext): ExtractionResult {
  const out: ExtractionResult = { findings: [], excluded: [], skipped: [], problems: [] };
  for (const d of documents) {
    const source = d.template ?? d.file;
    if (!isObject(d.value)) {
      out.problems.push({
        severity: 'warning',
        code: 'YAML_INVALID',
        message: `document ${d.index + 1}${d.file ? ` of ${d.file}` : ''} (line ${d.line}) is not a Kubernetes object`,
        origin: { release: ctx.release, ...(source ? { source } : {}) },
      });
      continue;
    }
    extractOne(d.value, source, ctx, out);
  }
  return out;
}

/** One line for people: `kserve: ConfigMap kserve/inferenceservice-config data.router.image`. */
export function formatOrigin(o: Origin): string {
  return `${o.release}: ${o.kind} ${o.namespace ? `${o.namespace}/` : ''}${o.name} ${o.path}${o.rule ? ` (rule ${o.rule})` : ''}${o.knob ? ` [knob ${o.knob}]` : ''}`;
}
