// A chart's default values as helm coalesces them: its own values.yaml, and every subchart's
// values under the subchart's alias (or name), the subchart's `global:` merged into the top-level
// `global:`; the parent's values win. Read straight from the .tgz (or chart directory), without
// extracting: only Chart.yaml, requirements.yaml, values.yaml and charts/*.tgz are read.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { Parser, type ReadEntry } from 'tar';
import { isPlainObject, mergeDeep } from '../config/merge.ts';
import { SealiftError, errorMessage } from '../errors.ts';
import { parseYamlGo } from '../render/manifests.ts';

const WANTED = /(^|\/)(Chart\.yaml|requirements\.yaml|values\.yaml)$|(^|\/)charts\/[^/]+\.tgz$/;
const MAX_FILE = 32 * 1024 * 1024;

/** path inside the chart archive -> bytes, for the files that carry values and dependencies */
type ChartFiles = Map<string, Buffer>;

async function filesOfArchive(bytes: Buffer, where: string): Promise<ChartFiles> {
  const files: ChartFiles = new Map();
  await new Promise<void>((resolve, reject) => {
    const parser = new Parser({
      onReadEntry: (e: ReadEntry) => {
        const path = e.path.replace(/^\.\//, '');
        if (e.type !== 'File' || !WANTED.test(path) || e.size > MAX_FILE) {
          e.resume();
          return;
        }
        const chunks: Buffer[] = [];
        e.on('data', (c: Buffer) => chunks.push(c));
        e.on('end', () => files.set(path, Buffer.concat(chunks)));
      },
    });
    parser.on('error', (err: Error) => reject(err));
    parser.on('end', () => resolve());
    parser.end(bytes);
  }).catch((e: unknown) => {
    throw new SealiftError('RENDER_FAILED', `cannot read the chart archive ${where}: ${errorMessage(e)}`, {
      hint: 'Give a chart .tgz made by `helm package` (or a chart directory).',
    });
  });
  return files;
}

async function filesOfDirectory(dir: string): Promise<ChartFiles> {
  const files: ChartFiles = new Map();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const rel = relative(dir, p).split('\\').join('/');
      if (e.isDirectory() && !e.name.startsWith('.')) await walk(p);
      else if (e.isFile() && WANTED.test(`chart/${rel}`)) files.set(`chart/${rel}`, await readFile(p));
    }
  };
  await walk(dir);
  return files;
}

function parseYamlFile(files: ChartFiles, path: string): Record<string, unknown> {
  const bytes = files.get(path);
  if (!bytes) return {};
  try {
    const v = parseYamlGo(bytes.toString('utf8'));
    return isPlainObject(v) ? v : {};
  } catch (e) {
    throw new SealiftError('RENDER_FAILED', `${path}: ${errorMessage(e).split('\n')[0]}`, {
      hint: 'The chart carries a file helm cannot read either; fix the chart.',
    });
  }
}

interface Dependency {
  name: string;
  alias?: string;
}

function dependenciesOf(files: ChartFiles, root: string): Dependency[] {
  const chart = parseYamlFile(files, `${root}Chart.yaml`);
  const requirements = parseYamlFile(files, `${root}requirements.yaml`);
  const list = Array.isArray(chart.dependencies)
    ? chart.dependencies
    : Array.isArray(requirements.dependencies)
      ? requirements.dependencies
      : [];
  return list
    .filter((d): d is { name: string; alias?: unknown } => isPlainObject(d) && typeof d.name === 'string')
    .map((d) => ({ name: d.name, ...(typeof d.alias === 'string' && d.alias ? { alias: d.alias } : {}) }));
}

/** The root directory of the one chart in an archive's files (`kserve/`). */
function rootOf(files: ChartFiles, where: string): string {
  const roots = [...files.keys()].filter((p) => /^[^/]+\/Chart\.yaml$/.test(p));
  if (roots.length !== 1) {
    throw new SealiftError('RENDER_FAILED', `${where} holds ${roots.length} top-level Chart.yaml files, not one`, {
      hint: 'Give a chart .tgz made by `helm package` (or a chart directory).',
    });
  }
  return roots[0]!.replace(/Chart\.yaml$/, '');
}

async function valuesOf(files: ChartFiles, root: string, where: string): Promise<Record<string, unknown>> {
  let values = parseYamlFile(files, `${root}values.yaml`);
  const deps = dependenciesOf(files, root);
  // subcharts: directories charts/<x>/ with a Chart.yaml, and archives charts/<x>.tgz
  const subs: { name: string; values: Record<string, unknown> }[] = [];
  const dirs = new Set<string>();
  for (const p of files.keys()) {
    const m = new RegExp(`^${escapeRe(root)}charts/([^/]+)/Chart\\.yaml$`).exec(p);
    if (m) dirs.add(`${root}charts/${m[1]}/`);
  }
  for (const d of [...dirs].sort()) {
    const name = parseYamlFile(files, `${d}Chart.yaml`).name;
    if (typeof name === 'string') subs.push({ name, values: await valuesOf(files, d, where) });
  }
  for (const [p, bytes] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
    if (!new RegExp(`^${escapeRe(root)}charts/[^/]+\\.tgz$`).test(p)) continue;
    const inner = await filesOfArchive(bytes, `${where}: ${p}`);
    const innerRoot = rootOf(inner, `${where}: ${p}`);
    const name = parseYamlFile(inner, `${innerRoot}Chart.yaml`).name;
    if (typeof name === 'string') subs.push({ name, values: await valuesOf(inner, innerRoot, `${where}: ${p}`) });
  }
  for (const sub of subs) {
    const uses = deps.filter((d) => d.name === sub.name);
    const keys = uses.length > 0 ? uses.map((d) => d.alias ?? d.name) : [sub.name];
    const { global, ...own } = sub.values;
    for (const key of keys) {
      values = mergeDeep({ [key]: own, ...(isPlainObject(global) ? { global } : {}) }, values);
    }
  }
  return values;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The coalesced default values of a chart .tgz or chart directory. */
export async function readChartValues(chart: string): Promise<Record<string, unknown>> {
  const s = await stat(chart).catch(() => undefined);
  if (s?.isDirectory()) return valuesOf(await filesOfDirectory(chart), 'chart/', chart);
  let bytes: Buffer;
  try {
    bytes = await readFile(chart);
  } catch (e) {
    throw new SealiftError('NOT_FOUND', `cannot read the chart ${chart}: ${errorMessage(e)}`);
  }
  const files = await filesOfArchive(bytes, chart);
  return valuesOf(files, rootOf(files, chart), chart);
}

/** A chart's Chart.yaml name and version, from its directory or .tgz (the one top-level chart in it). */
export async function readChartMetadata(chart: string): Promise<{ name?: string; version?: string }> {
  const s = await stat(chart).catch(() => undefined);
  let files: ChartFiles;
  let root = 'chart/';
  if (s?.isDirectory()) {
    const text = await readFile(join(chart, 'Chart.yaml')).catch(() => undefined);
    files = new Map(text ? [['chart/Chart.yaml', text]] : []);
  } else {
    files = await filesOfArchive(await readFile(chart), chart);
    root = rootOf(files, chart);
  }
  if (!files.has(`${root}Chart.yaml`)) return {};
  const meta = parseYamlFile(files, `${root}Chart.yaml`);
  const str = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? String(v) : undefined);
  const name = str(meta.name);
  const version = str(meta.version);
  return { ...(name ? { name } : {}), ...(version ? { version } : {}) };
}
