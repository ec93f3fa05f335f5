// Loopback chart servers holding ../shared/fixtures, served the way the internet serves them:
//   - a Helm HTTP repository (index.yaml made by `helm repo index --url`, plus the .tgz files)
//   - an OCI registry holding the charts (real docker-registry, charts pushed by `helm push --plain-http`)
//   - a file server for the Knative release files, at GitHub's download paths
//     (/<owner>/<repo>/releases/download/<tag>/<file>, from fixtures/releases/<owner>/<repo>/<tag>/<file>)
// Usage:
//   await using servers = await startChartServers();
//   await writeFile(overlay, servers.sourcesOverlayYaml());   // sources: for environments/default.yaml
//   ... generate with { overlays: [overlay] }, then run helmfile ...
//   servers.requests  // every HTTP path served (repo + files), to assert what was fetched
import { copyFile, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join, normalize, resolve } from 'node:path';
import { execa } from 'execa';
import { parse } from 'yaml';
import { requireTool, PROJECT_ROOT } from '../../src/tools.ts';
import { tempDir } from './process.ts';
import { startRegistry, type TestRegistry } from './registry.ts';

export const FIXTURES = resolve(PROJECT_ROOT, '../shared/fixtures');

export interface ChartServers {
  /** Helm HTTP repository URL, e.g. http://127.0.0.1:PORT/charts */
  helmRepoUrl: string;
  /** OCI base holding every fixture chart as <base>/<chart>, e.g. oci://127.0.0.1:PORT/charts (plain HTTP) */
  ociBase: string;
  /** the OCI registry host:port */
  ociHost: string;
  /** base URL standing in for https://github.com (release downloads) */
  filesUrl: string;
  /** paths the HTTP server answered, with status, in order: "200 /charts/index.yaml" */
  requests: string[];
  /** `sources:` pointing every source of <stackDir>/environments/default.yaml (by its type) at these
   *  servers: oci -> ociBase, repo -> helmRepoUrl, url -> filesUrl. stackDir defaults to the project. */
  sourcesOverlay(stackDir?: string): Promise<{ sources: Record<string, SourceOverride> }>;
  /** the same as an environment file's text, ready for loadEnvironment's overlays / --overlay */
  sourcesOverlayYaml(stackDir?: string): Promise<string>;
  /** environment for helm children that keeps their repo/registry config in a temp dir */
  helmEnv: Record<string, string>;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface SourceOverride {
  type: 'repo' | 'oci' | 'url';
  url: string;
  plainHttp?: boolean;
}

export interface ChartServerOptions {
  /** chart files (names in fixtures/charts) to serve; default: all */
  charts?: string[];
  /** skip the OCI registry (faster when a test only needs the HTTP repo and files) */
  oci?: boolean;
  /** serve release files from this tree (same layout as fixtures/releases) instead of the fixtures */
  releasesDir?: string;
}

const CONTENT_TYPES: Record<string, string> = { '.yaml': 'application/yaml', '.tgz': 'application/gzip' };

/** Maps a request path to a file under `repoDir` or the fixture releases, or undefined. */
function resolvePath(repoDir: string, releasesDir: string, urlPath: string): string | undefined {
  const path = decodeURIComponent(urlPath.split('?')[0] ?? '');
  if (path.includes('\0')) return undefined;
  const parts = normalize(path).split('/').filter(Boolean);
  if (parts.includes('..')) return undefined;
  if (parts[0] === 'charts' && parts.length === 2) return join(repoDir, parts[1]!);
  // GitHub release download: /<owner>/<repo>/releases/download/<tag>/<file>
  if (parts.length === 6 && parts[2] === 'releases' && parts[3] === 'download') {
    return join(releasesDir, parts[0]!, parts[1]!, parts[4]!, parts[5]!);
  }
  return undefined;
}

async function listen(server: Server): Promise<number> {
  return new Promise((res, rej) => {
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      res(typeof a === 'object' && a ? a.port : 0);
    });
  });
}

export async function startChartServers(opts: ChartServerOptions = {}): Promise<ChartServers> {
  const helm = requireTool('helm');
  const tmp = await tempDir('sealift-charts-');
  const repoDir = join(tmp.path, 'repo');
  await mkdir(repoDir, { recursive: true });
  const helmEnv = {
    HELM_CACHE_HOME: join(tmp.path, 'helm', 'cache'),
    HELM_CONFIG_HOME: join(tmp.path, 'helm', 'config'),
    HELM_DATA_HOME: join(tmp.path, 'helm', 'data'),
  };
  const all = (await readdir(join(FIXTURES, 'charts'))).filter((f) => f.endsWith('.tgz')).sort();
  const charts = opts.charts ?? all;
  for (const c of charts) await copyFile(join(FIXTURES, 'charts', c), join(repoDir, c));

  const requests: string[] = [];
  const server = createServer((req, res) => {
    void (async () => {
      const file = resolvePath(repoDir, opts.releasesDir ?? join(FIXTURES, 'releases'), req.url ?? '/');
      const st = file ? await stat(file).catch(() => undefined) : undefined;
      if (!file || !st?.isFile() || (req.method !== 'GET' && req.method !== 'HEAD')) {
        requests.push(`404 ${req.url}`);
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      requests.push(`200 ${req.url}`);
      const ext = file.slice(file.lastIndexOf('.'));
      res.writeHead(200, {
        'content-type': CONTENT_TYPES[ext] ?? 'application/octet-stream',
        'content-length': st.size,
      });
      if (req.method === 'HEAD') res.end();
      else res.end(await readFile(file));
    })().catch((e: unknown) => {
      res.writeHead(500).end(String(e));
    });
  });
  const port = await listen(server);
  const base = `http://127.0.0.1:${port}`;
  const helmRepoUrl = `${base}/charts`;
  await execa(helm, ['repo', 'index', repoDir, '--url', helmRepoUrl], { env: { ...process.env, ...helmEnv } });

  let registry: TestRegistry | undefined;
  try {
    if (opts.oci !== false) {
      registry = await startRegistry();
      for (const c of charts) {
        await execa(helm, ['push', join(repoDir, c), `oci://${registry.host}/charts`, '--plain-http'], {
          env: { ...process.env, ...helmEnv },
        });
      }
    }
  } catch (e) {
    server.close();
    await registry?.stop();
    await tmp[Symbol.asyncDispose]();
    throw e;
  }

  const ociHost = registry?.host ?? '';
  const ociBase = registry ? `oci://${registry.host}/charts` : '';
  const sourcesOverlay = async (stackDir = PROJECT_ROOT) => {
    const text = await readFile(join(stackDir, 'environments', 'default.yaml'), 'utf8');
    const declared = ((parse(text) as { sources?: Record<string, { type: string }> } | null)?.sources ?? {}) as Record<
      string,
      { type: string }
    >;
    const sources: Record<string, SourceOverride> = {};
    for (const [name, src] of Object.entries(declared).sort(([a], [b]) => a.localeCompare(b))) {
      if (src.type === 'local') continue; // charts in the stack itself: nothing upstream to serve
      if (src.type === 'oci') {
        if (!registry)
          throw new Error(`source ${name} is OCI, but the chart servers were started without { oci: true }`);
        sources[name] = { type: 'oci', url: ociBase, plainHttp: true };
      } else if (src.type === 'repo') sources[name] = { type: 'repo', url: helmRepoUrl };
      else sources[name] = { type: 'url', url: base };
    }
    return { sources };
  };
  const stop = async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    await registry?.stop();
    await tmp[Symbol.asyncDispose]();
  };
  return {
    helmRepoUrl,
    ociBase,
    ociHost,
    filesUrl: base,
    requests,
    sourcesOverlay,
    sourcesOverlayYaml: async (stackDir?: string) => {
      const s = (await sourcesOverlay(stackDir)).sources;
      const lines = Object.entries(s).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`);
      return `# source overrides: every upstream source served from 127.0.0.1\nsources:\n${lines.join('\n')}\n`;
    },
    helmEnv,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
