// The data the Handlebars templates see. One helmfile serves every generated environment; what
// differs between environments (chart location, repositories, fetch hooks, which releases exist)
// is wrapped in Go template conditions on .Environment.Name, grouped so that environments that
// agree share one block. Field by field, as the templates use them:
import type { Environment } from '../config/index.ts';
import type { ReleasePlan } from './plan.ts';

export interface HelmfileContext {
  /** environment files the output was made from, relative to the stack dir */
  inputs: string[];
  environments: EnvironmentContext[];
  /** `repositories:` entries, per group of environments */
  repositoryGroups: Guarded<{ repos: { name: string; url: string }[] }>[];
  releases: ReleaseContext[];
}

export interface EnvironmentContext {
  name: string;
  kubeVersion: string;
  /** registry host or null */
  registry: string | null;
  chartsFrom: 'sources' | 'site';
  /** helmfile apiVersions (helm template --api-versions) */
  apiVersions: string[];
}

/** `open`/`close` are Go template lines (`{{- if ... }}` / `{{- end }}`), empty when every environment agrees. */
export type Guarded<T> = T & { open: string; close: string; environments: string[] };

export interface HookContext {
  events: string[];
  command: string;
  args: string[];
}

export interface ReleaseSettings {
  namespace: string;
  labels: { app: string; tier: string };
  /** `namespace/name` of each needed release */
  needs: string[];
  createNamespace: boolean;
  /** release-level helmfile settings, as [key, JSON value] pairs in a stable order */
  options: { key: string; value: string }[];
}

export interface ReleaseLocation {
  /** helmfile chart: `repo/chart`, `oci://...`, `./charts/x.tgz` or `./releases/<name>` */
  chart: string;
  version: string | null;
  plainHttp: boolean;
  hooks: HookContext[];
}

export interface ReleaseContext {
  name: string;
  /** open/close wrap the whole release when some environments do not have it */
  guard: { open: string; close: string };
  /** namespace, labels, needs, ...: usually one group for all environments */
  settings: Guarded<ReleaseSettings>[];
  /** chart location and fetch hooks: differs between internet and site environments */
  locations: Guarded<ReleaseLocation>[];
}

export interface EnvPlan {
  env: Environment;
  plans: ReleasePlan[];
}

function condition(envs: string[]): string {
  const eqs = envs.map((e) => `(eq .Environment.Name ${JSON.stringify(e)})`);
  return eqs.length === 1 ? eqs[0]!.slice(1, -1) : `or ${eqs.join(' ')}`;
}

/** Groups per-environment values that are equal (by JSON), keeping first-seen order. */
function group<T>(all: string[], items: { env: string; value: T }[]): Guarded<T>[] {
  const groups = new Map<string, { value: T; envs: string[] }>();
  for (const { env, value } of items) {
    const key = JSON.stringify(value);
    const g = groups.get(key);
    if (g) g.envs.push(env);
    else groups.set(key, { value, envs: [env] });
  }
  return [...groups.values()].map(({ value, envs }) => {
    const everywhere = envs.length === all.length;
    return {
      ...value,
      environments: envs,
      open: everywhere ? '' : `{{- if ${condition(envs)} }}`,
      close: everywhere ? '' : '{{- end }}',
    };
  });
}

function fetchHook(dir: string, file: { name: string; url: string }): HookContext {
  // download beside the wrapper chart's templates; write to .part and rename, so an interrupted
  // download never looks complete
  return {
    events: ['prepare'],
    command: 'sh',
    args: [
      '-c',
      'set -eu; mkdir -p "$(dirname "$1")"; if command -v curl >/dev/null 2>&1; then curl --fail --silent --show-error --location --retry 3 -o "$1.part" "$2"; else wget -q -O "$1.part" "$2"; fi; mv "$1.part" "$1"',
      'fetch',
      `${dir}/${file.name}`,
      file.url,
    ],
  };
}

/**
 * Site charts are .tgz files (byte-exact from the bundle), but helmfile lint only treats a chart
 * directory as local: for a .tgz it runs `helm fetch ./charts/x.tgz`, which fails. So on the site
 * a prepare hook unpacks each .tgz into charts/.unpacked/<file>/ and the release uses that dir.
 */
export const UNPACKED_DIR = 'charts/.unpacked';

function unpackHook(tgz: string, dir: string): HookContext {
  return {
    events: ['prepare'],
    command: 'sh',
    args: [
      '-c',
      'set -eu; if [ ! -f "$1" ]; then echo "sealift: chart $1 is missing: put the bundle\'s site files here (sealift load --extract-to)" >&2; exit 1; fi; rm -rf "$2.part"; mkdir -p "$2.part"; tar -xzf "$1" -C "$2.part"; rm -rf "$2"; mv "$2.part" "$2"',
      'unpack',
      tgz,
      dir,
    ],
  };
}

type ChartRef = Pick<ReleaseLocation, 'chart' | 'version' | 'plainHttp'>;

function firstInstallHook(p: ReleasePlan, v: ChartRef, attempts: number, skipSchema: boolean): HookContext {
  const flags = [
    v.version ? `--version ${v.version}` : '',
    `--namespace ${p.namespace} --create-namespace`,
    `--values values/{{ .Environment.Name }}/${p.name}.yaml`,
    '--wait --timeout 600s',
    v.plainHttp ? '--plain-http' : '',
    skipSchema ? '--skip-schema-validation' : '',
  ].filter(Boolean);
  const script = [
    'set -u',
    'helm="${HELM_BIN:-helm}"',
    `if "$helm" status ${p.name} --namespace ${p.namespace} >/dev/null 2>&1; then exit 0; fi`,
    'i=1',
    `until "$helm" upgrade --install ${p.name} ${v.chart} ${flags.join(' ')}; do`,
    `  if [ "$i" -ge ${attempts} ]; then exit 1; fi`,
    `  echo "${p.name}: first install attempt $i of ${attempts} failed (its webhook may not be serving yet); retrying in 20s" >&2`,
    '  i=$((i + 1))',
    '  sleep 20',
    'done',
  ].join('\n');
  return { events: ['presync'], command: 'sh', args: ['-c', script] };
}

export function buildContext(envPlans: EnvPlan[], inputs: string[]): HelmfileContext {
  const envNames = envPlans.map((e) => e.env.name);
  const environments: EnvironmentContext[] = envPlans.map(({ env }) => ({
    name: env.name,
    kubeVersion: env.kubeVersion,
    registry: env.registry?.host ?? null,
    chartsFrom: env.chartsFrom,
    apiVersions: env.apiVersions,
  }));

  const repositoryGroups = group(
    envNames,
    envPlans.map(({ env, plans }) => {
      const repos = new Map<string, string>();
      if (env.chartsFrom === 'sources') {
        for (const p of plans) {
          if (p.source.type !== 'repo') continue;
          const rel = env.releases[p.name]!;
          repos.set(rel.chart!.source, p.source.repoUrl);
        }
      }
      const list = [...repos].sort(([a], [b]) => a.localeCompare(b)).map(([name, url]) => ({ name, url }));
      return { env: env.name, value: { repos: list } };
    }),
  );

  // release order: first-seen over the environments' install orders
  const order: string[] = [];
  for (const { plans } of envPlans) for (const p of plans) if (!order.includes(p.name)) order.push(p.name);

  const releases: ReleaseContext[] = order.map((name) => {
    const present = envPlans.filter(({ plans }) => plans.some((p) => p.name === name));
    const everywhere = present.length === envPlans.length;
    const per = present.map(({ env, plans }) => {
      const p = plans.find((x) => x.name === name)!;
      const r = env.releases[name]!;
      const site = env.chartsFrom === 'site';
      let ref: ChartRef;
      const hooks: HookContext[] = [];
      if (p.source.type === 'local' && !p.source.packaged) {
        // generate copies the chart directory there, in every environment
        ref = { chart: `./${p.sitePath.replace(/\/+$/, '')}`, version: null, plainHttp: false };
      } else if (p.source.type === 'manifests') {
        const dir = p.sitePath.replace(/\/+$/, '');
        ref = { chart: `./${dir}`, version: null, plainHttp: false };
        if (!site) hooks.push(...p.source.files.map((f) => fetchHook(dir, f)));
      } else if (site || p.source.type === 'local') {
        // a site archive, or a packaged local chart (generate copies the .tgz there in every environment)
        const dir = `${UNPACKED_DIR}/${p.sitePath
          .split('/')
          .pop()!
          .replace(/\.tgz$/, '')}`;
        ref = { chart: `./${dir}/${r.chart!.name}`, version: null, plainHttp: false };
        hooks.push(unpackHook(p.sitePath, dir));
      } else if (p.source.type === 'oci') {
        ref = { chart: p.source.url, version: p.source.version, plainHttp: p.source.plainHttp };
      } else {
        ref = { chart: `${r.chart!.source}/${p.source.chart}`, version: p.source.version, plainHttp: false };
      }
      if (r.firstInstallRetries > 0)
        hooks.push(firstInstallHook(p, ref, r.firstInstallRetries, r.helmfile.skipSchemaValidation === true));
      const settings: ReleaseSettings = {
        namespace: p.namespace,
        labels: { app: p.labels.app ?? name, tier: p.labels.tier ?? '' },
        needs: p.needs.map((n) => `${env.releases[n]!.namespace}/${n}`),
        createNamespace: r.createNamespace,
        options: Object.entries(r.helmfile)
          .filter(([, v]) => v !== undefined)
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([key, v]) => ({ key, value: JSON.stringify(v) })),
      };
      return { env: env.name, settings, location: { ...ref, hooks } };
    });
    const scope = present.map((e) => e.env.name);
    return {
      name,
      guard: everywhere
        ? { open: '', close: '' }
        : { open: `{{- if ${condition(present.map((e) => e.env.name))} }}`, close: '{{- end }}' },
      settings: group(
        scope,
        per.map((x) => ({ env: x.env, value: x.settings })),
      ),
      locations: group(
        scope,
        per.map((x) => ({ env: x.env, value: x.location })),
      ),
    };
  });

  return { inputs, environments, repositoryGroups: repositoryGroups.filter((g) => g.repos.length > 0), releases };
}
