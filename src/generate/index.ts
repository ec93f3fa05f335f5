// `generate`: environments + templates -> helmfile.yaml.gotmpl, values/<env>/<release>.yaml and a
// wrapper chart per release-file release (releases/<release>/). Deterministic (same input, same
// bytes: nothing depends on time, absolute paths or map order) and atomic (the output directory
// is built beside the old one and swapped in only when everything rendered).
import { createHash } from 'node:crypto';
import { cp, readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { listEnvironments, loadEnvironment, type Environment } from '../config/index.ts';
import { noEvents, type RunOptions } from '../events.ts';
import { pathExists, replaceDirAtomic } from '../fs-atomic.ts';
import { buildContext, type EnvPlan } from './context.ts';
import { SealiftError, errorMessage } from '../errors.ts';
import { planReleases, type InferredKnobs, type InferredValues } from './plan.ts';
import { renderTemplate } from './render.ts';

export { planReleases } from './plan.ts';
export type { ChartSource, ReleasePlan, PlanMode } from './plan.ts';

export interface GenerateOptions extends RunOptions {
  /** directory holding environments/ and templates/ */
  stackDir: string;
  /** one environment, several, or 'all' (every environments/*.yaml but default) */
  env: string | string[];
  outDir: string;
  /** extra environment files merged last (source overrides) */
  overlays?: string[];
  /** where <env>.lock.json is, with the knobs `sealift images` inferred (default <stack>/imagelists) */
  imagelistsDir?: string;
}

export interface GeneratedFile {
  /** relative to outDir, '/' separated */
  path: string;
  bytes: number;
  sha256: string;
  action: 'written' | 'unchanged';
}

export interface GenerateResult {
  outDir: string;
  environments: string[];
  files: GeneratedFile[];
  /** fetched artifacts (charts/, release files) carried over from the previous output */
  kept: string[];
}

const MANIFESTS_CHART = 'manifests-chart';

/** Loads the named environments (in the given order, 'all' sorted). */
export async function loadEnvironments(
  stackDir: string,
  env: string | string[],
  overlays?: string[],
): Promise<Environment[]> {
  const names = env === 'all' ? await listEnvironments(stackDir) : [...new Set(Array.isArray(env) ? env : [env])];
  const out: Environment[] = [];
  for (const n of names) out.push(await loadEnvironment(stackDir, n, { overlays }));
  return out;
}

async function listFiles(dir: string, base = dir): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const out: string[] = [];
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(p, base)));
    else out.push(relative(base, p).split('\\').join('/'));
  }
  return out;
}

/** Renders every output file in memory: relative path -> contents. */
export async function renderSite(
  stackDir: string,
  envs: Environment[],
  knobs: Record<string, LockedKnobs> = {},
): Promise<Map<string, string | Buffer>> {
  const envPlans: EnvPlan[] = envs.map((env) => ({
    env,
    plans: planReleases(env, {
      mode: 'deploy',
      ...(knobs[env.name] ? { inferredKnobs: knobs[env.name]!.knobs, inferredValues: knobs[env.name]!.values } : {}),
    }),
  }));
  const inputs = [...new Set(envs.flatMap((e) => e.files.map((f) => relative(stackDir, f).split('\\').join('/'))))];
  const files = new Map<string, string | Buffer>();
  files.set(
    'helmfile.yaml.gotmpl',
    await renderTemplate(stackDir, 'helmfile.yaml.gotmpl.hbs', buildContext(envPlans, inputs)),
  );

  for (const { env, plans } of envPlans) {
    for (const p of plans) {
      files.set(
        `values/${env.name}/${p.name}.yaml`,
        await renderTemplate(stackDir, 'values.yaml.hbs', { release: p.name, environment: env.name, values: p.values }),
      );
    }
  }

  // one wrapper chart per release-file release (same in every environment: only values differ)
  const chartTemplates = await listFiles(join(stackDir, 'templates', MANIFESTS_CHART));
  const wrapped = new Map<string, { name: string; version: string; files: string[] }>();
  for (const { env, plans } of envPlans) {
    for (const p of plans) {
      if (p.source.type !== 'manifests' || wrapped.has(p.sitePath)) continue;
      wrapped.set(p.sitePath, {
        name: p.name,
        version: env.releases[p.name]!.manifests!.version.replace(/^v/, ''),
        files: p.source.files.map((f) => f.name),
      });
    }
  }
  for (const [sitePath, w] of [...wrapped].sort(([a], [b]) => a.localeCompare(b))) {
    const ctx = {
      name: w.name,
      version: w.version,
      description: `Release files ${w.files.join(', ')}, installed as they are`,
    };
    for (const t of chartTemplates) {
      const target = `${sitePath.replace(/\/+$/, '')}/${t.replace(/\.hbs$/, '')}`;
      files.set(
        target,
        t.endsWith('.hbs')
          ? await renderTemplate(stackDir, `${MANIFESTS_CHART}/${t}`, ctx)
          : await readFile(join(stackDir, 'templates', MANIFESTS_CHART, t), 'utf8'),
      );
    }
  }
  for (const [path, text] of await localChartFiles(envPlans)) files.set(path, text);
  return new Map([...files].sort(([a], [b]) => a.localeCompare(b)));
}

/** Charts kept in the stack (source type local), copied as they are to their site path: a chart
 *  directory file by file, a packaged chart (.tgz) as its bytes. */
async function localChartFiles(envPlans: EnvPlan[]): Promise<Map<string, string | Buffer>> {
  const out = new Map<string, string | Buffer>();
  const seen = new Set<string>();
  for (const { env, plans } of envPlans) {
    for (const p of plans) {
      if (p.source.type !== 'local' || seen.has(p.source.path)) continue;
      seen.add(p.source.path);
      const { path, version, packaged } = p.source;
      const where = `${relative(process.cwd(), env.file) || env.file}: releases.${p.name}`;
      if (packaged) {
        // found by its name <chart>-<version>.tgz (plan.ts): the name carries the version
        out.set(p.sitePath, await readFile(path));
        continue;
      }
      const chartYaml = await readFile(join(path, 'Chart.yaml'), 'utf8').catch(() => undefined);
      const found =
        chartYaml === undefined ? undefined : (parseYaml(chartYaml) as { version?: unknown } | null)?.version;
      if (chartYaml === undefined) {
        throw new SealiftError(
          'CONFIG_INVALID',
          `${where}: the local chart ${path} has no Chart.yaml (nor is there a ${path}-${version}.tgz)`,
          {
            hint: 'A local chart is <source url>/<chart name>/ (a chart directory) or <source url>/<chart name>-<version>.tgz (helm package), the source url relative to the stack dir, next to environments/: copy it along with the environments.',
          },
        );
      }
      if (String(found) !== version) {
        throw new SealiftError(
          'CONFIG_INVALID',
          `${where}.chart.version is ${version}, but ${join(path, 'Chart.yaml')} says ${String(found)}`,
          {
            hint: "A local chart lives in <source url>/<chart name>/ of the stack; keep its Chart.yaml version and the release's chart.version the same.",
          },
        );
      }
      // bytes, not text: a chart directory may carry packaged subcharts (charts/*.tgz)
      for (const f of await listFiles(path)) out.set(`${p.sitePath}${f}`, await readFile(join(path, f)));
    }
  }
  return out;
}

/** The inferred knobs `sealift images` recorded in the environment's lock, if it has any. */
export interface LockedKnobs {
  knobs: InferredKnobs;
  values: InferredValues;
}

async function lockedKnobs(imagelistsDir: string, env: string): Promise<LockedKnobs | undefined> {
  const text = await readFile(join(imagelistsDir, `${env}.lock.json`), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  let lock: { knobs?: unknown; knobValues?: unknown };
  try {
    lock = JSON.parse(text) as { knobs?: unknown; knobValues?: unknown };
  } catch (e) {
    throw new SealiftError('CONFIG_INVALID', `imagelists/${env}.lock.json is not JSON: ${errorMessage(e)}`, {
      hint: `Regenerate it with \`sealift images -e ${env}\`.`,
    });
  }
  if (!lock.knobs || typeof lock.knobs !== 'object') return undefined;
  const values = lock.knobValues && typeof lock.knobValues === 'object' ? lock.knobValues : {};
  return { knobs: lock.knobs as InferredKnobs, values: values as InferredValues };
}

/** Files a previous run's output holds that generate does not make: fetched charts and release files. */
async function fetchedArtifacts(outDir: string, envs: Environment[]): Promise<string[]> {
  const keep: string[] = [];
  // charts/*.tgz (not charts/.unpacked/, which the site's prepare hooks rebuild)
  if (await pathExists(join(outDir, 'charts'))) {
    const entries = await readdir(join(outDir, 'charts'), { withFileTypes: true });
    keep.push(...entries.filter((e) => e.isFile() && !e.name.startsWith('.')).map((e) => `charts/${e.name}`));
  }
  for (const env of envs) {
    for (const p of planReleases(env, { mode: 'upstream' })) {
      if (p.source.type !== 'manifests') continue;
      for (const f of p.source.files) {
        const rel = `${p.sitePath.replace(/\/+$/, '')}/${f.name}`;
        if (!keep.includes(rel) && (await pathExists(join(outDir, rel)))) keep.push(rel);
      }
    }
  }
  return keep.sort();
}

export async function generate(opts: GenerateOptions): Promise<GenerateResult> {
  const onEvent = opts.onEvent ?? noEvents;
  const envs = await loadEnvironments(opts.stackDir, opts.env, opts.overlays);
  const knobs: Record<string, LockedKnobs> = {};
  for (const env of envs) {
    if (!env.registry) continue;
    const found = await lockedKnobs(opts.imagelistsDir ?? join(opts.stackDir, 'imagelists'), env.name);
    if (found) knobs[env.name] = found;
    else
      onEvent({
        type: 'warn',
        message: `${env.name}: no image lock with inferred knobs (imagelists/${env.name}.lock.json): its values move only the hand-written imageKnobs; run \`sealift images -e ${env.name}\` first`,
      });
  }
  const files = await renderSite(opts.stackDir, envs, knobs);
  const kept = await fetchedArtifacts(opts.outDir, envs);

  const result: GeneratedFile[] = [];
  await replaceDirAtomic(opts.outDir, async (tmp) => {
    for (const rel of kept) {
      await mkdir(dirname(join(tmp, rel)), { recursive: true });
      await cp(join(opts.outDir, rel), join(tmp, rel), { preserveTimestamps: true });
    }
    for (const [rel, text] of files) {
      const target = join(tmp, rel);
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, text);
      const previous = await readFile(join(opts.outDir, rel)).catch(() => undefined);
      result.push({
        path: rel,
        bytes: Buffer.byteLength(text),
        sha256: createHash('sha256').update(text).digest('hex'),
        action: previous?.equals(Buffer.from(text)) ? 'unchanged' : 'written',
      });
    }
  });
  for (const f of result) onEvent({ type: 'file', action: f.action, path: join(opts.outDir, f.path) });
  return { outDir: opts.outDir, environments: envs.map((e) => e.name), files: result, kept };
}
