// Environments: environments/<name>.yaml merged over environments/default.yaml (and optional
// overlay files), validated by one zod schema. Every error names the file, the line and the key,
// because the YAML is parsed with source ranges (eemeli yaml + LineCounter) and each schema issue
// path is mapped back to the file that set it.
import { readdir, readFile } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { errorMessage, SealiftError } from '../errors.ts';
import type { NamingScheme } from '../oci/naming.ts';
import { parseImageReference } from '../oci/reference.ts';
import { isQuantity } from '../quantity.ts';
import { isPlainObject, mergeDeep } from './merge.ts';

export { isPlainObject, mergeDeep } from './merge.ts';

const NAME_RE = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const HOST_RE = /^[A-Za-z0-9.-]+(:[0-9]+)?$|^\[[0-9a-fA-F:]+\](:[0-9]+)?$/;

const dnsName = z.string().regex(NAME_RE, 'must be a lower-case DNS label (a-z, 0-9, -)');

const SourceSchema = z.strictObject({
  /** repo: a Helm HTTP repository; oci: an OCI registry path holding charts; url: a base URL for file downloads;
   *  local: a directory of charts on disk, <url>/<chart>/ or <url>/<chart>-<version>.tgz (url: relative
   *  to the stack dir, e.g. charts, or absolute) */
  type: z.enum(['repo', 'oci', 'url', 'local']),
  url: z.string().min(1),
  /** OCI over plain HTTP (loopback test registries, site registries without TLS) */
  plainHttp: z.boolean().default(false),
});

const ChartSchema = z.strictObject({
  source: z.string().min(1),
  name: z.string().min(1),
  version: z.string().min(1),
});

const ManifestsSchema = z.strictObject({
  source: z.string().min(1),
  /** paths below the source URL; the file name (last component) must be unique in the release */
  files: z.array(z.string().min(1)).min(1),
  /** image name prefixes inside the files; with a registry they are host-swapped at render time */
  images: z.array(z.string().min(1)).default([]),
  /** version of the generated wrapper chart (what `helm list` shows) */
  version: z
    .string()
    .regex(/^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$/, 'must be a semantic version')
    .default('0.1.0'),
});

/** Release-level helmfile settings passed through as they are (see helmfile's ReleaseSpec). */
const HelmfileOptionsSchema = z.strictObject({
  wait: z.boolean().optional(),
  waitForJobs: z.boolean().optional(),
  timeout: z.number().int().positive().optional(),
  atomic: z.boolean().optional(),
  historyMax: z.number().int().min(0).optional(),
  skipSchemaValidation: z.boolean().optional(),
  disableValidation: z.boolean().optional(),
  disableOpenAPIValidation: z.boolean().optional(),
});

const ReleaseSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    namespace: dnsName,
    createNamespace: z.boolean().default(true),
    /** label app (defaults to the release name) and label tier */
    app: z.string().min(1).optional(),
    tier: z.string().min(1),
    /** other releases (by name) that must be installed first */
    needs: z.array(z.string().min(1)).default([]),
    chart: ChartSchema.optional(),
    manifests: ManifestsSchema.optional(),
    /** values passed to the chart as they are */
    values: z.record(z.string(), z.unknown()).default({}),
    /** image knobs: values path (dotted, list items as [i]) -> the upstream value; host-swapped when the environment has a registry */
    imageKnobs: z.record(z.string(), z.string().min(1)).default({}),
    /** values path where generate writes the environment's models: [{name, format, image, storageUri}],
     *  the image mapped into the registry like an image knob (platform-extras: smokeTest.models) */
    modelsKnob: z.string().min(1).optional(),
    /** release-level helmfile settings (wait, timeout, skipSchemaValidation, ...) */
    helmfile: HelmfileOptionsSchema.default({}),
    /** first install retries: a release whose own webhook must be up before its custom resources apply */
    firstInstallRetries: z.number().int().min(0).max(20).default(0),
    /** `sealift images`: references no render shows (added to the list as they are) */
    extraImages: z.array(z.string().min(1)).default([]),
    /** `sealift images`: listed references to leave out (globs over the normalized reference, `*` = anything) */
    excludeImages: z.array(z.string().min(1)).default([]),
  })
  .refine((r) => (r.chart === undefined) !== (r.manifests === undefined), {
    message: 'a release needs exactly one of "chart" or "manifests"',
  });

const quantity = z
  .union([z.string(), z.number()])
  .refine(isQuantity, 'must be a Kubernetes quantity (64, 500m, 450Gi, 450G)');

/** The site's nodes, for `sealift size`: every node alike (count x allocatable per node). */
const ClusterSchema = z.strictObject({
  nodes: z.number().int().positive(),
  /** allocatable per node */
  cpu: quantity,
  memory: quantity,
  gpus: z.number().int().min(0).default(0),
  /** percent of the cluster kept free (node failure, rollouts, model pods) */
  headroom: z.number().min(0).max(90).default(20),
});

/** A model the bundle packages as a KServe modelcar image (src/models) */
const ModelSchema = z.strictObject({
  /** the InferenceService's name and the image's repository (models/<name>) */
  name: dnsName,
  /** a directory or file of model files (relative to the stack dir), or an http(s) URL of one file */
  from: z.string().min(1),
  /** KServe model format (spec.predictor.model.modelFormat.name): sklearn, xgboost, ... */
  format: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'must be a KServe model format name such as sklearn'),
  /** the image tag; a changed model needs a new tag (nodes cache by tag) */
  tag: z
    .string()
    .regex(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/, 'must be an image tag')
    .default('v1'),
});

export const EnvironmentFileSchema = z.strictObject({
  /** Kubernetes version helm renders for (helm --kube-version) */
  kubeVersion: z.string().regex(/^v?\d+\.\d+(\.\d+)?$/, 'must look like v1.28.6'),
  /** the site's private registry; null for an online environment */
  registry: z
    .strictObject({
      host: z.string().regex(HOST_RE, 'must be HOST[:PORT] without a scheme'),
      plainHttp: z.boolean().default(false),
      /** how upstream names map into the registry (src/oci/naming.ts siteReference):
       *  host-swap `docker.io/istio/pilot` -> `HOST/istio/pilot`; scoped -> `HOST/docker.io/istio/pilot`
       *  (for stacks where two upstream hosts carry the same path) */
      scheme: z.enum(['host-swap', 'scoped']).default('host-swap'),
    })
    .nullable()
    .default(null),
  /** where helmfile takes charts and release files from: the sources (internet), or the site dir */
  chartsFrom: z.enum(['sources', 'site']).default('sources'),
  /** named chart repositories, OCI chart registries and download bases; override them per environment */
  sources: z.record(dnsName, SourceSchema).default({}),
  releases: z.record(dnsName, ReleaseSchema).default({}),
  /** the site's nodes (sealift size compares the stack's requests with them) */
  cluster: ClusterSchema.optional(),
  /** API groups/versions the site's cluster serves beyond the built-in ones (helm template --api-versions),
   *  e.g. monitoring.coreos.com/v1 when the Prometheus operator is installed: charts render what needs them */
  apiVersions: z
    .array(
      z.string().regex(/^([a-z0-9.-]+\/)?v[0-9][a-z0-9]*(\/[A-Za-z]+)?$/, 'must look like monitoring.coreos.com/v1'),
    )
    .default([]),
  /** models packaged as modelcar images by `bundle` (oci://<registry>/models/<name>:<tag> at the site) */
  models: z.array(ModelSchema).default([]),
});

type EnvironmentFile = z.output<typeof EnvironmentFileSchema>;
export type SourceConfig = z.output<typeof SourceSchema>;
export type ReleaseConfig = z.output<typeof ReleaseSchema>;
export type ClusterConfig = z.output<typeof ClusterSchema>;
export type ModelConfig = z.output<typeof ModelSchema>;

export interface RegistryConfig {
  host: string;
  plainHttp: boolean;
  /** how upstream image names map into the registry; every stage uses siteReference (src/oci/naming.ts) with it */
  scheme: NamingScheme;
}

export interface Environment {
  name: string;
  /** the environment's own file (absolute) */
  file: string;
  /** every file merged, in order (default.yaml first) */
  files: string[];
  /** the directory holding environments/ (local chart sources and model paths are relative to it) */
  stackDir: string;
  kubeVersion: string;
  registry: RegistryConfig | null;
  chartsFrom: 'sources' | 'site';
  sources: Record<string, SourceConfig>;
  /** all releases, disabled ones too (planReleases skips them), in file order */
  releases: Record<string, ReleaseConfig>;
  /** the site's nodes, when the environment describes them */
  cluster?: ClusterConfig;
  /** helm template --api-versions (and the helmfile's apiVersions) */
  apiVersions: string[];
  models: ModelConfig[];
}

export interface LoadOptions {
  /** extra files merged after the environment file (e.g. source overrides for a mirror or a test) */
  overlays?: string[];
}

interface ParsedFile {
  file: string;
  doc: Document.Parsed;
  lines: LineCounter;
  data: unknown;
}

async function parseFile(file: string, display: string): Promise<ParsedFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new SealiftError('CONFIG_INVALID', `cannot read ${display}: ${(e as Error).message}`, {
      hint: 'Check the path; environments live in environments/<name>.yaml.',
      details: { file: display },
    });
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const err = doc.errors[0];
  if (err) {
    const pos = lines.linePos(err.pos[0]);
    throw new SealiftError(
      'CONFIG_INVALID',
      `${display}:${pos.line}:${pos.col}: YAML syntax error: ${err.message.split('\n')[0]}`,
      {
        hint: 'Fix the YAML at that line (indentation, quoting, a missing colon).',
        details: { file: display, line: pos.line, column: pos.col },
      },
    );
  }
  const data = doc.toJS({ maxAliasCount: 1000 }) ?? {};
  if (!isPlainObject(data)) {
    throw new SealiftError(
      'CONFIG_INVALID',
      `${display}:1: the file must be a mapping (key: value), not ${Array.isArray(data) ? 'a list' : typeof data}`,
      {
        details: { file: display, line: 1 },
      },
    );
  }
  return { file: display, doc, lines, data };
}

/** The line of `path` in `pf` (the key's line for map entries), or of its nearest existing ancestor. */
function lineOf(pf: ParsedFile, path: readonly PropertyKey[]): { line: number; depth: number } {
  let node: unknown = pf.doc.contents;
  let line = 1;
  let depth = 0;
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === key);
      if (!pair) break;
      const range = isScalar(pair.key) ? pair.key.range : undefined;
      if (range) line = pf.lines.linePos(range[0]).line;
      node = pair.value;
    } else if (isSeq(node) && typeof key === 'number') {
      const item = node.items[key];
      if (!item) break;
      const range = (item as { range?: [number, number, number] }).range;
      if (range) line = pf.lines.linePos(range[0]).line;
      node = item;
    } else break;
    depth++;
  }
  return { line, depth };
}

/** file:line for a path in the merged data: the last file that sets it (or its deepest ancestor). */
function locate(files: ParsedFile[], path: readonly PropertyKey[]): { file: string; line: number } {
  let best: { file: string; line: number; depth: number } | undefined;
  for (const pf of files) {
    const at = lineOf(pf, path);
    if (!best || at.depth >= best.depth) best = { file: pf.file, ...at };
  }
  return best ? { file: best.file, line: best.line } : { file: '?', line: 1 };
}

function keyPath(path: readonly PropertyKey[]): string {
  return (
    path
      .map((k) => (typeof k === 'number' ? `[${k}]` : String(k)))
      .join('.')
      .replace(/\.\[/g, '[') || '(top level)'
  );
}

function configError(files: ParsedFile[], path: readonly PropertyKey[], message: string, hint: string): SealiftError {
  const at = locate(files, path);
  const key = keyPath(path);
  return new SealiftError('CONFIG_INVALID', `${at.file}:${at.line}: ${key}: ${message}`, {
    hint,
    details: { file: at.file, line: at.line, key },
  });
}

export async function listEnvironments(stackDir: string): Promise<string[]> {
  const dir = join(stackDir, 'environments');
  const names = await readdir(dir).catch(() => [] as string[]);
  return names
    .filter((n) => n.endsWith('.yaml'))
    .map((n) => basename(n, '.yaml'))
    .filter((n) => n !== 'default' && NAME_RE.test(n))
    .sort();
}

/** Fails with USAGE naming the known environments unless `envName` is one of `stackDir`'s. */
export async function requireEnvironment(stackDir: string, envName: string): Promise<void> {
  const known = await listEnvironments(stackDir);
  if (!NAME_RE.test(envName) || envName === 'default' || !known.includes(envName)) {
    throw new SealiftError(
      'USAGE',
      `unknown environment "${envName}" (no environments/${envName}.yaml in ${stackDir})`,
      {
        hint: known.length
          ? `Known environments: ${known.join(', ')}.`
          : 'Create environments/<name>.yaml next to environments/default.yaml.',
        details: { environment: envName, known },
      },
    );
  }
}

export async function loadEnvironment(stackDir: string, envName: string, opts: LoadOptions = {}): Promise<Environment> {
  await requireEnvironment(stackDir, envName);
  const show = (f: string) => {
    const r = relative(process.cwd(), f);
    return r && !r.startsWith('..') ? r : f;
  };
  const defaultFile = join(stackDir, 'environments', 'default.yaml');
  const envFile = join(stackDir, 'environments', `${envName}.yaml`);
  const paths = [defaultFile, envFile, ...(opts.overlays ?? [])];
  const files: ParsedFile[] = [];
  for (const p of paths) files.push(await parseFile(p, show(p)));

  let merged: Record<string, unknown> = {};
  for (const pf of files) merged = mergeDeep(merged, pf.data as Record<string, unknown>);

  const parsed = EnvironmentFileSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    let path: PropertyKey[] = [...issue.path];
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') {
      path = [...path, issue.keys[0]!];
      message = `unknown key "${issue.keys[0]}"`;
    }
    throw configError(files, path, message, hintFor(path));
  }
  const data: EnvironmentFile = parsed.data;
  checkReferences(files, data);

  return {
    name: envName,
    file: envFile,
    files: paths,
    kubeVersion: data.kubeVersion.startsWith('v') ? data.kubeVersion : `v${data.kubeVersion}`,
    registry: data.registry ? { ...data.registry } : null,
    chartsFrom: data.chartsFrom,
    sources: data.sources,
    releases: data.releases,
    ...(data.cluster ? { cluster: data.cluster } : {}),
    stackDir: resolve(stackDir),
    apiVersions: data.apiVersions,
    models: data.models,
  };
}

function hintFor(path: readonly PropertyKey[]): string {
  const top = path[0];
  if (top === 'releases')
    return 'Release keys: enabled, namespace, createNamespace, app, tier, needs, chart {source, name, version} or manifests {source, files, images, version}, values, imageKnobs, modelsKnob, helmfile {wait, waitForJobs, timeout, atomic, historyMax, skipSchemaValidation, disableValidation, disableOpenAPIValidation}, firstInstallRetries, extraImages, excludeImages.';
  if (top === 'sources') return 'Source keys: type (repo | oci | url | local), url, plainHttp.';
  if (top === 'models') return 'Model keys: name, from (a directory, file or URL), format (sklearn, ...), tag.';
  return 'Top-level keys: kubeVersion, registry {host, plainHttp, scheme (host-swap | scoped)}, chartsFrom (sources | site), sources, releases, apiVersions, models, cluster {nodes, cpu, memory, gpus, headroom}. See environments/README.md.';
}

/** Cross-references the schema cannot see: sources named by releases, needs, dependency cycles. */
function checkReferences(files: ParsedFile[], data: EnvironmentFile): void {
  const enabled = Object.entries(data.releases).filter(([, r]) => r.enabled);
  const enabledNames = new Set(enabled.map(([n]) => n));
  for (const [name, rel] of enabled) {
    const ref = rel.chart ?? rel.manifests!;
    const kind = rel.chart ? 'chart' : 'manifests';
    const src = data.sources[ref.source];
    if (!src) {
      throw configError(
        files,
        ['releases', name, kind, 'source'],
        `names source "${ref.source}", which is not defined`,
        `Define it under sources: (known: ${Object.keys(data.sources).join(', ') || 'none'}).`,
      );
    }
    const want = rel.chart ? ['repo', 'oci', 'local'] : ['url'];
    if (!want.includes(src.type)) {
      throw configError(
        files,
        ['releases', name, kind, 'source'],
        `source "${ref.source}" has type ${src.type}, but a ${kind} release needs ${want.join(' or ')}`,
        'Point the release at a source of the right type.',
      );
    }
    if (rel.manifests) {
      const seen = new Set<string>();
      rel.manifests.files.forEach((f, i) => {
        const b = f.split('/').pop()!;
        if (seen.has(b) || !/^[A-Za-z0-9._-]+\.ya?ml$/.test(b)) {
          throw configError(
            files,
            ['releases', name, 'manifests', 'files', i],
            `file name "${b}" is not a unique *.yaml name in this release`,
            'Each release file must end in .yaml and have a distinct name.',
          );
        }
        seen.add(b);
      });
    }
    // image knobs and file image prefixes must be image names: they are host-swapped for a registry
    const images: [PropertyKey[], string][] = [
      ...Object.entries(rel.imageKnobs).map(([k, v]): [PropertyKey[], string] => [
        ['releases', name, 'imageKnobs', k],
        v.replace(/\/+$/, ''), // a trailing "/" marks a prefix (a hub): src/generate/plan.ts siteImage
      ]),
      ...(rel.manifests?.images ?? []).map((v, i): [PropertyKey[], string] => [
        ['releases', name, 'manifests', 'images', i],
        v.replace(/\/+$/, ''),
      ]),
    ];
    for (const [path, value] of images) {
      try {
        parseImageReference(value);
      } catch (e) {
        throw configError(
          files,
          path,
          `"${value}" is not an image name: ${errorMessage(e)}`,
          'Write the value upstream ships, e.g. docker.io/istio or quay.io/jetstack/cert-manager-controller.',
        );
      }
    }
    rel.needs.forEach((n, i) => {
      if (!data.releases[n]) {
        throw configError(
          files,
          ['releases', name, 'needs', i],
          `needs "${n}", which is not a release`,
          `Known releases: ${Object.keys(data.releases).join(', ')}.`,
        );
      }
      if (!enabledNames.has(n)) {
        throw configError(
          files,
          ['releases', name, 'needs', i],
          `needs "${n}", which is disabled in this environment`,
          `Enable ${n} or disable ${name} too.`,
        );
      }
    });
  }
  // cycles: depth-first search with colours; report the cycle as a chain
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): void => {
    if (state.get(n) === 'done') return;
    if (state.get(n) === 'visiting') {
      const cycle = [...stack.slice(stack.indexOf(n)), n];
      // point at the edge set by the latest file (the environment's, rather than default.yaml's)
      const edges = cycle
        .slice(0, -1)
        .map((from, i) => ['releases', from, 'needs', data.releases[from]!.needs.indexOf(cycle[i + 1]!)]);
      const rank = (path: PropertyKey[]) => files.findIndex((f) => f.file === locate(files, path).file);
      const edge = edges.reduce((best, e) => (rank(e) > rank(best) ? e : best), edges[0]!);
      throw configError(
        files,
        edge,
        `dependency cycle: ${cycle.join(' needs ')}`,
        'Remove one of these needs so that the releases can be installed in order.',
      );
    }
    state.set(n, 'visiting');
    stack.push(n);
    for (const d of data.releases[n]!.needs) visit(d);
    stack.pop();
    state.set(n, 'done');
  };
  for (const [n] of enabled) visit(n);
}
