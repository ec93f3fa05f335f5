// The site files a bundle carries beside the images: the generated helmfile and values for the
// environment, every chart at its pinned version (sha256 recorded), release files, and the
// effective environment itself (environments/, see site-env.ts) so the site can verify alone.
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { SealiftError, errorMessage } from '../errors.ts';
import { noEvents, type RunOptions } from '../events.ts';
import { sha256File } from './pack.ts';
import { writeSiteEnvironment } from './site-env.ts';

export interface SiteFiles {
  charts: {
    release: string;
    chart: string;
    version: string;
    source: string;
    path: string;
    sha256: string;
    size: number;
  }[];
  files: { release?: string; path: string; url?: string; sha256: string; size: number }[];
  imagelists: string[];
  /** the environment's registry: where (and by which naming scheme) the carried values point */
  registry?: { host: string; plainHttp: boolean; scheme: 'host-swap' | 'scoped' } | null;
}

export async function assembleSiteFiles(
  opts: RunOptions & { stackDir: string; env: string; workDir: string; overlays?: string[] },
): Promise<SiteFiles> {
  const onEvent = opts.onEvent ?? noEvents;
  const { loadEnvironment } = await import('../config/index.ts');
  const { planReleases } = await import('../generate/plan.ts');
  const { generate } = await import('../generate/index.ts');
  const { chartName, fetchChart, saveManifestFile } = await import('../render/index.ts');
  const env = await loadEnvironment(opts.stackDir, opts.env, opts.overlays ? { overlays: opts.overlays } : {});
  const plans = planReleases(env, { mode: 'upstream' });
  const out: SiteFiles = { charts: [], files: [], imagelists: [], registry: env.registry };

  onEvent({ type: 'phase', name: 'fetching charts and release files', total: plans.length });
  for (const plan of plans) {
    const src = plan.source;
    // a local chart is a directory of the stack: generate copies it into the site dir (below)
    if (src.type === 'local') continue;
    if (src.type === 'manifests') {
      for (const f of src.files) {
        const rel = join(plan.sitePath, f.name).split('\\').join('/');
        const saved = await saveManifestFile(f.url, join(opts.workDir, rel), opts);
        out.files.push({ release: plan.name, path: rel, url: f.url, sha256: saved.sha256, size: saved.size });
      }
      continue;
    }
    let tgz: string;
    try {
      tgz = await fetchChart(src, opts.signal ? { signal: opts.signal } : {});
    } catch (e) {
      throw new SealiftError(
        (e as SealiftError).code ?? 'TOOL_FAILED',
        `release ${plan.name}: cannot fetch its chart: ${errorMessage(e)}`,
        { cause: e, ...((e as SealiftError).hint ? { hint: (e as SealiftError).hint } : {}) },
      );
    }
    const target = join(opts.workDir, plan.sitePath);
    await mkdir(dirname(target), { recursive: true });
    await copyFile(tgz, target);
    const { hex, size } = await sha256File(target);
    out.charts.push({
      release: plan.name,
      chart: chartName(src),
      version: src.version,
      source: src.type === 'repo' ? src.repoUrl : src.url,
      path: plan.sitePath,
      sha256: hex,
      size,
    });
    onEvent({ type: 'file', action: 'written', path: plan.sitePath });
  }

  // the generated helmfile and values, as `sealift generate` writes them
  const gen = join(opts.workDir, '.generate');
  await rm(gen, { recursive: true, force: true });
  const result = await generate({
    stackDir: opts.stackDir,
    env: opts.env,
    outDir: gen,
    onEvent,
    ...(opts.overlays ? { overlays: opts.overlays } : {}),
  });
  for (const f of result.files) {
    await mkdir(dirname(join(opts.workDir, f.path)), { recursive: true });
    await copyFile(join(gen, f.path), join(opts.workDir, f.path));
    out.files.push({ path: f.path, sha256: f.sha256, size: f.bytes });
  }
  await rm(gen, { recursive: true, force: true });

  // the environment those values were generated from, for `sealift verify --stack <site dir>`
  const from = env.files.map((f) => {
    const r = relative(opts.stackDir, f);
    return r && !r.startsWith('..') ? r : `${basename(f)} (--overlay)`;
  });
  for (const f of await writeSiteEnvironment(opts.workDir, env, from)) {
    out.files.push(f);
    onEvent({ type: 'file', action: 'written', path: f.path });
  }
  return out;
}
