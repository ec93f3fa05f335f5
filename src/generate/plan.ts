// The plan: what each release is, where its chart or files come from, and the values helmfile
// passes. Pure: data in, data out. Both the generated helmfile and the image/bundle stages read
// the same plan, so what is pulled is what is deployed.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { mergeDeep, setPath, setPathThroughLists } from '../config/merge.ts';
import type { Environment, RegistryConfig, ReleaseConfig } from '../config/index.ts';
import { SealiftError } from '../errors.ts';
import { sitePrefix, siteReference } from '../oci/naming.ts';
import { formatImageReference, isBareRegistryHost, parseImageReference } from '../oci/reference.ts';
import { modelImageReference } from '../models/reference.ts';

export type ChartSource =
  | { type: 'repo'; repoUrl: string; chart: string; version: string } // Helm HTTP repo
  | { type: 'oci'; url: string; version: string; plainHttp: boolean } // url = oci://host[:port]/path/chart
  | { type: 'manifests'; files: { name: string; url: string }[] } // release YAML downloads (Knative)
  // a chart in the stack (platform-extras): its directory, or the .tgz `helm package` made (packaged)
  | { type: 'local'; path: string; packaged: boolean; chart: string; version: string };

export interface ReleasePlan {
  name: string;
  namespace: string;
  /** names of the releases this one needs (helmfile writes them as namespace/name) */
  needs: string[];
  labels: Record<string, string>;
  /** where the internet host fetches it (source overrides applied) */
  source: ChartSource;
  /** where the airgap helmfile expects it, relative to the site dir:
   *  charts/<chart>-<version>.tgz  or  releases/<release>/ (dir holding the files) */
  sitePath: string;
  /** merged values exactly as helmfile passes them in this mode */
  values: Record<string, unknown>;
}

export type PlanMode = 'upstream' | 'deploy';

function joinUrl(base: string, path: string): string {
  return `${base.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
}

/** A bare registry host (`docker.io`, `quay.io`, `localhost:5000`): what a registry knob holds. */

/**
 * An image knob value or image name prefix as the site pulls it: mapped by the environment's
 * naming scheme through the one naming function load, mirror and verify use (src/oci/naming.ts),
 * tags and digests kept. A value ending in "/" is a prefix (a hub the chart appends names to),
 * written without the "/"; any other value is an image, normalized as a runtime pulls it.
 * host-swap: `docker.io/istio/` -> `REG/istio`, `docker.io/busybox` -> `REG/library/busybox`,
 * `kserve/agent` -> `REG/kserve/agent`; scoped: `docker.io/istio/` -> `REG/docker.io/istio`.
 * A bare registry host (`image.registry: docker.io`) becomes `REG` (scoped: `REG/docker.io`).
 */
export function siteImage(image: string, registry: Pick<RegistryConfig, 'host' | 'scheme'>, where: string): string {
  if (isBareRegistryHost(image)) {
    // a registry knob (`image.registry: docker.io`): the chart appends the repository itself
    const upstream = image === 'index.docker.io' ? 'docker.io' : image;
    return registry.scheme === 'scoped' ? `${registry.host}/${upstream}` : registry.host;
  }
  const mapped = image.endsWith('/')
    ? sitePrefix(image.replace(/\/+$/, ''), registry.host, registry.scheme, where)
    : formatImageReference(siteReference(parseImageReference(image, where), registry.host, registry.scheme));
  try {
    parseImageReference(mapped);
  } catch {
    // scoped keeps the upstream host as a path component, and a path component has no port
    throw new SealiftError(
      'CONFIG_INVALID',
      `${where}: "${image}" becomes "${mapped}" under registry.scheme ${registry.scheme}, which is not a valid image name`,
      {
        hint: 'An upstream host with a port cannot be scoped: use scheme host-swap, or name the image by a host without a port.',
      },
    );
  }
  return mapped;
}

function sourceOf(env: Environment, name: string, rel: ReleaseConfig): ChartSource {
  const ref = rel.chart ?? rel.manifests!;
  const src = env.sources[ref.source];
  if (!src) {
    throw new SealiftError(
      'CONFIG_INVALID',
      `release ${name} names source "${ref.source}", which ${env.file} does not define`,
      {
        hint: 'Define the source under sources:.',
      },
    );
  }
  if (rel.chart) {
    if (src.type === 'local') {
      // <url>/<name>/, else the archive helm package names <url>/<name>-<version>.tgz
      const dir = resolve(env.stackDir, src.url, rel.chart.name);
      const archive = `${dir}-${rel.chart.version}.tgz`;
      const packaged = !existsSync(dir) && existsSync(archive);
      return {
        type: 'local',
        path: packaged ? archive : dir,
        packaged,
        chart: rel.chart.name,
        version: rel.chart.version,
      };
    }
    if (src.type === 'oci') {
      const base = src.url.startsWith('oci://') ? src.url : `oci://${src.url}`;
      return { type: 'oci', url: joinUrl(base, rel.chart.name), version: rel.chart.version, plainHttp: src.plainHttp };
    }
    return { type: 'repo', repoUrl: src.url.replace(/\/+$/, ''), chart: rel.chart.name, version: rel.chart.version };
  }
  return {
    type: 'manifests',
    files: rel.manifests!.files.map((f) => ({ name: f.split('/').pop()!, url: joinUrl(src.url, f) })),
  };
}

/**
 * The wrapper chart applies the rewrites one after another to the whole text. Under the scoped
 * scheme a rewrite's output still holds its input (`gcr.io/x/` -> `REG/gcr.io/x/`), so a later
 * rewrite whose prefix occurs in an earlier one's output would rewrite it twice.
 */
function checkRewrites(rewrites: { from: string; to: string }[], where: string): void {
  rewrites.forEach((a, i) => {
    rewrites.forEach((b, j) => {
      if (j > i && (a.to.includes(b.from) || a.from === b.from)) {
        throw new SealiftError(
          'CONFIG_INVALID',
          `${where}: image prefix "${b.from.slice(0, -1)}" also matches "${a.to.slice(0, -1)}", what "${a.from.slice(0, -1)}" becomes; the files would be rewritten twice`,
          { hint: 'List each image prefix once, and no prefix that is the tail of another.' },
        );
      }
    });
  });
}

/** Knobs found by inference (src/images/knobs.ts), per release: values path -> upstream value. */
export type InferredKnobs = Record<string, Record<string, string>>;
/** Values rules that hold for a release once its images move (rules/*.yaml `values:`), per release. */
export type InferredValues = Record<string, Record<string, unknown>>;

function valuesOf(
  env: Environment,
  name: string,
  rel: ReleaseConfig,
  mode: PlanMode,
  inferred: Record<string, string>,
  ruleValues: Record<string, unknown>,
): Record<string, unknown> {
  const registry = mode === 'deploy' ? env.registry : null;
  const where = (k: string) => `${env.file}: releases.${name}`.concat(k ? `.${k}` : '');
  let values: Record<string, unknown> = mergeDeep({}, rel.values);
  if (rel.manifests) {
    // the wrapper chart's values: which files to emit, and prefix rewrites for their images
    const rewrites = registry
      ? rel.manifests.images.map((prefix) => ({
          from: `${prefix.replace(/\/+$/, '')}/`,
          to: `${siteImage(`${prefix.replace(/\/+$/, '')}/`, registry, where('manifests.images'))}/`,
        }))
      : [];
    checkRewrites(rewrites, where('manifests.images'));
    values = mergeDeep(values, { files: rel.manifests.files.map((f) => f.split('/').pop()!), imageRewrites: rewrites });
  }
  if (registry) {
    // what a chart needs once its images move (bitnami's allowInsecureImages); the release's own values win
    values = mergeDeep(ruleValues, values);
    // inferred knobs first, so that a hand knob on the same path wins
    // a knob through a list item (`containers[0].image`) changes that item of the whole list, which
    // the release's values or the lock's knobValues (the chart's list, recorded by inference) give
    const missing = (path: string) => (list: string) =>
      new SealiftError(
        'CONFIG_INVALID',
        `${where('')}: knob ${path} goes through the list ${list}, which no values give`,
        {
          hint: `A list is replaced whole when values merge: run \`sealift images -e ${env.name}\` (it records the chart's list in the lock), or write the whole list under releases.${name}.values.`,
        },
      );
    for (const [path, image] of Object.entries(inferred)) {
      if (path in rel.imageKnobs) continue;
      const site = siteImage(image, registry, `${where('')} (inferred knob ${path})`);
      values = setPathThroughLists(values, path, site, {}, missing(path));
    }
    for (const [path, image] of Object.entries(rel.imageKnobs)) {
      const site = siteImage(image, registry, where(`imageKnobs.${path}`));
      values = setPathThroughLists(values, path, site, {}, missing(path));
    }
  }
  if (rel.modelsKnob) {
    // the modelcar images bundle builds, named like any image: upstream, or mapped into the registry
    const models = env.models.map((m) => {
      const upstream = modelImageReference(m);
      const image = registry ? siteImage(upstream, registry, `${env.file}: models ${m.name}`) : upstream;
      return { name: m.name, format: m.format, image, storageUri: `oci://${image}` };
    });
    values = setPath(values, rel.modelsKnob, models);
  }
  return values;
}

/** Enabled releases in install order (dependencies first, otherwise file order). */
export function planReleases(
  env: Environment,
  opts: { mode: PlanMode; inferredKnobs?: InferredKnobs; inferredValues?: InferredValues },
): ReleasePlan[] {
  const enabled = Object.entries(env.releases).filter(([, r]) => r.enabled);
  const byName = new Map(enabled);
  const ordered: string[] = [];
  const seen = new Set<string>();
  const visit = (n: string, chain: string[]): void => {
    if (seen.has(n)) return;
    if (chain.includes(n)) {
      throw new SealiftError('CONFIG_INVALID', `dependency cycle: ${[...chain, n].join(' -> ')} (${env.file})`, {
        hint: 'Remove one of these needs.',
      });
    }
    const rel = byName.get(n);
    if (!rel)
      throw new SealiftError(
        'CONFIG_INVALID',
        `"${chain.at(-1)}" needs "${n}", which is not an enabled release (${env.file})`,
      );
    for (const d of rel.needs) visit(d, [...chain, n]);
    seen.add(n);
    ordered.push(n);
  };
  for (const [n] of enabled) visit(n, []);

  return ordered.map((name) => {
    const rel = byName.get(name)!;
    const source = sourceOf(env, name, rel);
    return {
      name,
      namespace: rel.namespace,
      needs: [...rel.needs],
      labels: { app: rel.app ?? name, tier: rel.tier },
      source,
      // a local chart travels as the directory generate copies it to (charts/ is a site path)
      sitePath:
        source.type === 'local' && !source.packaged
          ? `charts/${source.chart}/`
          : rel.chart
            ? `charts/${rel.chart.name}-${rel.chart.version}.tgz`
            : `releases/${name}/`,
      values: valuesOf(env, name, rel, opts.mode, opts.inferredKnobs?.[name] ?? {}, opts.inferredValues?.[name] ?? {}),
    };
  });
}
