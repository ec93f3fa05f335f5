// Image-knob inference: which values path moves each image a chart renders.
//
//   candidates  string leaves of the chart's coalesced values (subcharts under their alias) and the
//               user's values whose value is an image's registry, its full name, its repository or
//               a prefix of its name at a `/` (a hub: `docker.io/istio`); empty `registry`/`hub`
//               leaves under `global.` (bitnami's `global.imageRegistry: ""`); every hand knob
//   sentinels   every candidate replaced at once by a unique registry host (`k7.sealift.invalid`),
//               keeping the rest of its value, in ONE extra `helm template`
//   reading     the sentinel render's images, by the same extraction and rules: an image whose
//               registry became a candidate's host is moved by that candidate; the values the
//               chart joins to it (repository, tag, digest) are kept, so tags and digests stay
//   preferring  a candidate under `global.` that claims an image it cannot move (its host is not
//               the image's registry there, or it would have to name two site prefixes) is dropped
//               and the render repeated; empty non-global leaves (`pilot.hub: ""`) are tried only
//               for images nothing else moved. Usually one render, at most three.
// Tag leaves are not replaced: a tag often decides template branches (semverCompare), and it is
// kept anyway. What no candidate moves is knob-less, with the reason.
import { getPath, isPlainObject, listPrefixes, mergeDeep, setPath, setPathThroughLists } from '../config/merge.ts';
import { isSealiftError, SealiftError } from '../errors.ts';
import { siteImage } from '../generate/plan.ts';
import { toYaml } from '../generate/render.ts';
import { conditionsHold, findImages, keyWords, type ImageFinding } from './extract.ts';
import type { ManifestDocument } from '../render/manifests.ts';
import { siteReference, type NamingScheme } from '../oci/naming.ts';
import {
  formatImageReference,
  isBareRegistryHost,
  normalizeImageReference,
  parseImageReference,
  type ImageReference,
} from '../oci/reference.ts';
import type { RuleSet } from './rules.ts';

export type CandidateKind = 'host' | 'domain-name' | 'name' | 'empty';

export interface KnobCandidate {
  id: number;
  path: string;
  /** the value the chart (or the user's values) ships */
  value: string;
  kind: CandidateKind;
  /** the registry host `value` starts with (host, domain-name) */
  domain?: string;
  token: string;
  sentinel: string;
  hand: boolean;
  global: boolean;
}

/** An inferred knob: a values path, and the value that `siteImage` maps into the site registry. */
export interface InferredKnob {
  path: string;
  /** the upstream value in the form the airgap mapping takes (`docker.io/istio`, `kserve/agent`, `docker.io`) */
  upstream: string;
  /** what the chart ships there (may be "" for a global registry override) */
  shipped: string;
  /** normalized upstream images it moves */
  images: string[];
  /** written in the environment file by hand */
  hand: boolean;
}

export interface KnoblessImage {
  reference: string;
  reason: string;
}

export interface KnobInference {
  knobs: InferredKnob[];
  /** upstream reference -> knob paths that move it */
  byImage: Map<string, string[]>;
  /** occurrence (`kind name path`) -> knob path */
  byOccurrence: Map<string, string>;
  knobless: KnoblessImage[];
  /** how many sentinel renders it took */
  renders: number;
  /** values rules (rules/*.yaml `values:`) that hold for this chart: the airgap values carry them */
  values: Record<string, unknown>;
  /** ids of the values rules used */
  valueRules: string[];
  /** the lists (by path) knobs go through, as the chart and the given values have them: the airgap
   *  values write each whole (a list replaces a list when values merge), only its image fields changed */
  lists: Record<string, unknown[]>;
}

const TOKEN_RE = /k(\d+)\.sealift\.invalid/g;
const tokenOf = (id: number) => `k${id}.sealift.invalid`;
const LEGACY_DOCKER = new Set(['index.docker.io', 'registry-1.docker.io', 'docker.io']);

/** `docker.io/x` and `index.docker.io/x` are one host to a runtime. */
function sameRegistry(a: string, b: string): boolean {
  return a === b || (LEGACY_DOCKER.has(a) && LEGACY_DOCKER.has(b));
}

/** The ways a chart may write an image's name: `docker.io/library/busybox`, `library/busybox`, `busybox`. */
function nameForms(ref: ImageReference): string[] {
  const forms = [`${ref.registry}/${ref.repository}`, ref.repository];
  if (ref.registry === 'docker.io') {
    forms.push(`index.docker.io/${ref.repository}`);
    if (ref.repository.startsWith('library/')) forms.push(ref.repository.slice('library/'.length));
  }
  return forms;
}

function firstDomain(value: string): string | undefined {
  const i = value.indexOf('/');
  if (i <= 0) return undefined;
  const first = value.slice(0, i);
  return first.includes('.') || first.includes(':') || first === 'localhost' ? first : undefined;
}

/** `registry`, `imageRegistry`, `hub`: keys whose empty value a chart fills with its default host */
const isRegistryKey = (key: string) => ['registry', 'hub'].includes(keyWords(key).at(-1) ?? '');

/** How `value` relates to one of the images, or undefined when it names none of them. */
function classify(value: string, key: string, images: readonly ImageReference[]): CandidateKind | undefined {
  const v = value.trim();
  if (v !== value || v === '') return v === '' && isRegistryKey(key) ? 'empty' : undefined;
  if (isBareRegistryHost(v)) return images.some((i) => sameRegistry(i.registry, v)) ? 'host' : undefined;
  let parsed: ImageReference;
  try {
    parsed = parseImageReference(v);
  } catch {
    return undefined;
  }
  const name = parsed.registry ? `${parsed.registry}/${parsed.repository}` : parsed.repository;
  const hit = images.some((i) => {
    if (parsed.tag !== undefined && parsed.tag !== i.tag) return false;
    if (parsed.digest !== undefined && parsed.digest !== i.digest) return false;
    return nameForms(i).some((f) => f === name || (!parsed.tag && !parsed.digest && f.startsWith(`${name}/`)));
  });
  if (!hit) return undefined;
  return firstDomain(v) ? 'domain-name' : 'name';
}

/** String leaves of a values tree as paths (`a.b`, through list items `a.b[0].image`); keys with
 *  dots are left out: no path names them. */
function leaves(node: unknown, prefix: string, out: { path: string; key: string; value: string }[], key = ''): void {
  if (typeof node === 'string') {
    if (prefix) out.push({ path: prefix, key, value: node });
  } else if (Array.isArray(node)) {
    node.forEach((v, i) => leaves(v, `${prefix}[${i}]`, out, key));
  } else if (isPlainObject(node)) {
    for (const [k, v] of Object.entries(node)) {
      if (k.includes('.') || k.includes('[') || k === '') continue;
      leaves(v, prefix ? `${prefix}.${k}` : k, out, k);
    }
  }
}

/** The lists (by path) that these values paths go through, as `values` has them: written whole. */
export function listsOf(paths: readonly string[], values: Record<string, unknown>): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  for (const p of paths)
    for (const at of listPrefixes(p)) {
      const list = getPath(values, at);
      if (Array.isArray(list)) out[at] = list;
    }
  return out;
}

const noList = (at: string) =>
  new SealiftError('INTERNAL', `knob inference: no list at ${at} in the chart's values to write whole`);

export function knobCandidates(
  values: Record<string, unknown>,
  images: readonly ImageReference[],
  handKnobs: Record<string, string> = {},
): KnobCandidate[] {
  const found: { path: string; key: string; value: string }[] = [];
  leaves(values, '', found);
  const out: KnobCandidate[] = [];
  const add = (path: string, value: string, kind: CandidateKind, hand: boolean) => {
    const id = out.length;
    const token = tokenOf(id);
    const domain = kind === 'host' ? value : kind === 'domain-name' ? firstDomain(value) : undefined;
    const sentinel =
      kind === 'host' || kind === 'empty'
        ? token
        : kind === 'domain-name'
          ? token + value.slice(domain!.length)
          : `${token}/${value}`;
    out.push({
      id,
      path,
      value,
      kind,
      ...(domain ? { domain } : {}),
      token,
      sentinel,
      hand,
      global: path === 'global' || path.startsWith('global.'),
    });
  };
  for (const [path, value] of Object.entries(handKnobs)) {
    add(
      path,
      value,
      classify(value, path.split('.').pop()!, images) ??
        (firstDomain(value) ? 'domain-name' : isBareRegistryHost(value) ? 'host' : 'name'),
      true,
    );
  }
  for (const l of found) {
    if (l.path in handKnobs) continue;
    const kind = classify(l.value, l.key, images);
    if (kind) add(l.path, l.value, kind, false);
  }
  return out;
}

/** The values overlay that puts every candidate's sentinel in place (lists copied whole from `values`). */
export function sentinelValues(
  candidates: readonly KnobCandidate[],
  values: Record<string, unknown> = {},
): Record<string, unknown> {
  const lists = listsOf(
    candidates.map((c) => c.path),
    values,
  );
  let v: Record<string, unknown> = {};
  for (const c of candidates) v = setPathThroughLists(v, c.path, c.sentinel, lists, noList);
  return v;
}

/** Puts back what the sentinels replaced; an empty-kind host at the start becomes `registry`. */
function restore(s: string, byId: Map<number, KnobCandidate>, registry?: string): string {
  return s.replace(/k(\d+)\.sealift\.invalid(\/?)/g, (m, id: string, slash: string, offset: number) => {
    const c = byId.get(Number(id));
    if (!c) return m;
    if (c.kind === 'host' || c.kind === 'domain-name') return c.domain! + slash;
    if (c.kind === 'empty' && offset === 0 && registry) return registry + slash;
    return '';
  });
}

const occurrenceKey = (f: { origin: ImageFinding['origin'] }, name = f.origin.name) =>
  `${f.origin.kind} ${f.origin.namespace ?? ''}/${name} ${f.origin.path}`;

/** A site registry stand-in for checking that a knob maps right under both schemes. */
const PROBE_HOST = 'site.sealift.invalid:5000';
const SCHEMES: readonly NamingScheme[] = ['host-swap', 'scoped'];

/** The site value a knob value maps to: the airgap values' own mapping (siteImage). */
export function mapKnobValue(value: string, host: string, scheme: NamingScheme): string {
  return siteImage(value, { host, scheme }, 'knob');
}

interface Move {
  candidate: KnobCandidate;
  image: string;
  occurrence: string;
  /** the value the knob must have, per scheme, for this occurrence to land where load pushes it */
  expected: Record<NamingScheme, string> | undefined;
  /** the upstream name prefix the knob stands for (`docker.io/istio`) */
  upstreamPrefix: string;
}

interface Analysis {
  moves: Move[];
  /** occurrence key -> ids of candidates whose sentinel shows in it but not as its registry */
  partial: Map<string, number[]>;
  /** occurrences of the upstream render the sentinel render did not show */
  unseen: Set<string>;
}

function analyze(
  upstream: readonly ImageFinding[],
  sentinel: readonly ImageFinding[],
  candidates: readonly KnobCandidate[],
): Analysis {
  const byId = new Map(candidates.map((c) => [c.id, c]));
  const at = new Map<string, ImageFinding[]>();
  for (const f of sentinel) {
    const key = occurrenceKey(f, restore(f.origin.name, byId));
    at.set(key, [...(at.get(key) ?? []), f]);
  }
  const moves: Move[] = [];
  const partial = new Map<string, number[]>();
  const unseen = new Set<string>();
  for (const u of upstream) {
    const key = occurrenceKey(u);
    const ref = normalizeImageReference(u.reference);
    const same = (at.get(key) ?? []).find((f) => {
      try {
        return formatImageReference(normalizeWithTag(restore(f.reference, byId, ref.registry))) === u.reference;
      } catch {
        return false;
      }
    });
    if (!same) {
      unseen.add(key);
      continue;
    }
    const ids = [...same.reference.matchAll(TOKEN_RE)].map((m) => Number(m[1]));
    if (ids.length === 0) continue;
    const host = parseImageReference(same.reference).registry;
    const mover = candidates.find((c) => c.token === host);
    if (!mover) {
      partial.set(key, ids);
      continue;
    }
    const suffix = restore(same.reference.slice(host.length), byId);
    const upstreamPrefix = u.reference.endsWith(suffix) ? u.reference.slice(0, -suffix.length) : '';
    let expected: Record<NamingScheme, string> | undefined = {} as Record<NamingScheme, string>;
    for (const scheme of SCHEMES) {
      let target: string;
      try {
        target = formatImageReference(siteReference(ref, PROBE_HOST, scheme));
      } catch {
        expected = undefined;
        break;
      }
      if (!target.endsWith(suffix)) {
        expected = undefined;
        break;
      }
      expected[scheme] = mover.sentinel.replace(mover.token, target.slice(0, -suffix.length));
    }
    moves.push({ candidate: mover, image: u.reference, occurrence: key, expected, upstreamPrefix });
    const parts = ids.filter((id) => id !== mover.id);
    if (parts.length) partial.set(key, parts);
  }
  return { moves, partial, unseen };
}

function normalizeWithTag(s: string): ImageReference {
  const r = normalizeImageReference(s);
  return r.tag === undefined && r.digest === undefined ? { ...r, tag: 'latest' } : r;
}

/** The one upstream value that maps to what every move of this knob needs, under both schemes. */
function upstreamValueFor(c: KnobCandidate, moves: readonly Move[]): string | undefined {
  if (moves.some((m) => m.expected === undefined)) return undefined;
  for (const s of SCHEMES) if (new Set(moves.map((m) => m.expected![s])).size > 1) return undefined;
  const values = [c.value, ...(firstDomain(c.value) || isBareRegistryHost(c.value) ? [] : [`docker.io/${c.value}`])];
  values.push(...new Set(moves.map((m) => m.upstreamPrefix)));
  // each as an image first, then as a prefix (a hub: the airgap mapping reads a trailing "/" as one)
  const options = [...values, ...values.filter((o) => o !== '' && !o.endsWith('/')).map((o) => `${o}/`)];
  return options.find((o) => {
    if (o === '') return false;
    try {
      return SCHEMES.every((s) => mapKnobValue(o, PROBE_HOST, s) === moves[0]!.expected![s]);
    } catch {
      return false;
    }
  });
}

export interface InferOptions {
  release: string;
  chart?: string;
  rules: RuleSet;
  /** the chart's coalesced default values merged with the values it is rendered with */
  values: Record<string, unknown>;
  /** findings of the render with the values as given */
  upstream: readonly ImageFinding[];
  handKnobs?: Record<string, string>;
  /** renders the chart with one more values overlay; returns its documents */
  render(overlay: Record<string, unknown>): Promise<ManifestDocument[]>;
}

/** The `values:` rules that apply to a chart with these values, merged (dotted keys set as paths). */
export function chartValueRules(
  rules: RuleSet,
  values: Record<string, unknown>,
  id: { chart?: string; release: string },
): { values: Record<string, unknown>; rules: string[] } {
  let out: Record<string, unknown> = {};
  const used: string[] = [];
  for (const r of rules.rules) {
    if (r.type !== 'values') continue;
    if (!r.match.test({ kind: '', name: '', release: id.release, ...(id.chart ? { chart: id.chart } : {}) })) continue;
    if (!conditionsHold(r, values)) continue;
    for (const [k, v] of Object.entries(r.set)) out = setPath(out, k, v);
    used.push(r.id);
  }
  return { values: out, rules: used };
}

export async function inferKnobs(o: InferOptions): Promise<KnobInference> {
  const extra = chartValueRules(o.rules, o.values, { release: o.release, ...(o.chart ? { chart: o.chart } : {}) });
  const images = [...new Set(o.upstream.map((f) => f.reference))];
  const refs = images.map((r) => normalizeImageReference(r));
  const all = knobCandidates(o.values, refs, o.handKnobs ?? {});
  const knobs = new Map<string, { c: KnobCandidate; moves: Move[] }>();
  const byOccurrence = new Map<string, string>();
  const partialAll = new Map<string, number[]>();
  let renders = 0;
  const base = { values: extra.values, valueRules: extra.rules };
  if (images.length === 0)
    return { knobs: [], byImage: new Map(), byOccurrence, knobless: [], renders, ...base, lists: {} };

  // an occurrence a knobless rule marks is not looked for again (no second render for it)
  const pending = new Set(o.upstream.map((u) => occurrenceKey(u)));
  const laterPending = (k: string) => o.upstream.some((u) => occurrenceKey(u) === k && !u.knobless);
  const dropped = new Set<number>();
  let failure: string | undefined;
  // pass 1: everything but empty non-global leaves; repeated without global knobs that fail
  // pass 2: empty non-global leaves too, for what is still unmoved
  for (const withLocalEmpty of [false, true]) {
    for (let attempt = 0; attempt < 2; attempt++) {
      const active = all.filter(
        (c) => !dropped.has(c.id) && (c.kind !== 'empty' || c.global || c.hand || withLocalEmpty),
      );
      if (active.length === 0 || pending.size === 0) break;
      if (withLocalEmpty && (![...pending].some(laterPending) || !active.some((c) => c.kind === 'empty' && !c.global)))
        break;
      let docs: ManifestDocument[];
      try {
        docs = await o.render(mergeDeep(sentinelValues(active, o.values), extra.values));
        renders++;
      } catch (e) {
        if (!isSealiftError(e)) throw e;
        failure = e.message.split('\n')[0];
        break;
      }
      const found = findImages(docs, { release: o.release, ...(o.chart ? { chart: o.chart } : {}), rules: o.rules });
      const upstream = o.upstream.filter((u) => pending.has(occurrenceKey(u)));
      const a = analyze(upstream, found.findings, active);
      const perCandidate = new Map<number, Move[]>();
      for (const m of a.moves) perCandidate.set(m.candidate.id, [...(perCandidate.get(m.candidate.id) ?? []), m]);
      // a global knob that shows in an occurrence it does not move, or cannot map all it moves: drop it, render again
      const failing = [...perCandidate.keys()]
        .map((id) => all[id]!)
        .filter((c) => c.global && !c.hand)
        .filter(
          (c) =>
            upstreamValueFor(c, perCandidate.get(c.id)!) === undefined ||
            [...a.partial.values()].some((ids) => ids.includes(c.id)),
        );
      if (failing.length > 0 && attempt === 0) {
        for (const c of failing) dropped.add(c.id);
        continue;
      }
      for (const [id, moves] of perCandidate) {
        const c = all[id]!;
        if (upstreamValueFor(c, moves) === undefined) {
          for (const m of moves) partialAll.set(m.occurrence, [...(partialAll.get(m.occurrence) ?? []), id]);
          continue;
        }
        const k = knobs.get(c.path) ?? { c, moves: [] };
        k.moves.push(...moves);
        knobs.set(c.path, k);
        for (const m of moves) {
          byOccurrence.set(m.occurrence, c.path);
          pending.delete(m.occurrence);
        }
      }
      for (const [k, ids] of a.partial) partialAll.set(k, [...(partialAll.get(k) ?? []), ...ids]);
      break;
    }
    if (failure) break;
  }

  const inferred: InferredKnob[] = [...knobs.values()]
    .map(({ c, moves }) => ({
      path: c.path,
      upstream: upstreamValueFor(c, moves)!,
      shipped: c.value,
      images: [...new Set(moves.map((m) => m.image))].sort(),
      hand: c.hand,
    }))
    .sort((a, b) => a.path.localeCompare(b.path));
  const byImage = new Map<string, string[]>();
  for (const k of inferred) for (const i of k.images) byImage.set(i, [...(byImage.get(i) ?? []), k.path]);

  const knobless: KnoblessImage[] = [];
  for (const image of images) {
    const occ = o.upstream.filter((u) => u.reference === image);
    const stuck = occ.filter((u) => !byOccurrence.has(occurrenceKey(u)));
    if (stuck.length === 0) continue;
    const rule = stuck.find((u) => u.knobless)?.knobless;
    const parts = [...new Set(stuck.flatMap((u) => partialAll.get(occurrenceKey(u)) ?? []))].map((id) => all[id]!.path);
    const where = stuck.map((u) => `${u.origin.kind} ${u.origin.name} ${u.origin.path}`).join('; ');
    const reason = failure
      ? `the sentinel render failed (${failure}), so no knob could be confirmed`
      : rule
        ? `rule ${rule.rule}: ${rule.description}`
        : parts.length > 0
          ? `values ${parts.join(', ')} reach it, but none sets its registry (${where})`
          : `no value of the chart holds its registry, name or a prefix of it (${where})`;
    knobless.push({ reference: image, reason });
  }
  const lists = listsOf(
    inferred.map((k) => k.path),
    o.values,
  );
  return { knobs: inferred, byImage, byOccurrence, knobless, renders, ...base, lists };
}

/** The values overlay that moves every knob's images into `host` by `scheme`; a list a knob goes
 *  through is written whole (from `lists`, the chart's), only its image fields changed. */
export function airgapValues(
  knobs: readonly Pick<InferredKnob, 'path' | 'upstream'>[],
  host: string,
  scheme: NamingScheme,
  lists: Record<string, unknown[]> = {},
): Record<string, unknown> {
  let v: Record<string, unknown> = {};
  for (const k of knobs) v = setPathThroughLists(v, k.path, mapKnobValue(k.upstream, host, scheme), lists, noList);
  return v;
}

/** What the containerd fallback is, for a knob-less image: nodes resolve its upstream name from the site. */
export function hostsTomlFallback(reference: string): string {
  const host = normalizeImageReference(reference).registry;
  return `nodes can still pull it from the site registry by its upstream name through containerd's certs.d/${host}/hosts.toml (sealift load --extract-to writes it)`;
}

/** The values file `images scan --airgap-values` prints: the values, and what they move, as comments. */
export function airgapValuesYaml(
  values: Record<string, unknown>,
  about: {
    target: string;
    host: string;
    scheme: NamingScheme;
    moved: string[];
    knobless: string[];
    valueRules: string[];
    /** paths of the lists written whole */
    lists?: string[];
  },
): string {
  const lines = [
    `# Values that move every image of ${about.target} into ${about.host} (scheme ${about.scheme}),`,
    '# tags and digests kept. Pass them to helm after your own values. Written by sealift images scan.',
    ...(about.valueRules.length ? [`# Also set by rules: ${about.valueRules.join(', ')}.`] : []),
    ...(about.lists?.length
      ? [
          `# Lists written whole (helm replaces a list, it does not merge it): ${about.lists.join(', ')}: the`,
          "# chart's list (with your values) with only the image fields changed; a later values file that sets",
          '# one of them must carry these images too.',
        ]
      : []),
    ...about.moved.map((m) => `#   moved: ${m}`),
    ...about.knobless.map((k) => `#   knob-less: ${k}`),
  ];
  const body = Object.keys(values).length === 0 ? '{}\n' : toYaml(values);
  return `${lines.join('\n')}\n${body}`;
}
