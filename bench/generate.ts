// Times `generate` and `helmfile template` for every environment, with charts from loopback
// servers (chartsFrom: sources) or from a site layout (chartsFrom: site, no server running).
// Usage: node bench/generate.ts [--runs N]     (prints one line per measurement, then a table)
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { listEnvironments, loadEnvironment } from '../src/config/index.ts';
import { runHelmfile } from '../src/generate/helmfile.ts';
import { generate } from '../src/generate/index.ts';
import { planReleases } from '../src/generate/plan.ts';
import { PROJECT_ROOT, requireTool } from '../src/tools.ts';
import { startChartServers } from '../test/support/chart-servers.ts';
import { tempDir } from '../test/support/process.ts';

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 5;

async function time<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = performance.now();
  const r = await fn();
  return [performance.now() - t, r];
}

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const med = s[Math.floor(s.length / 2)]!;
  return `min ${s[0]!.toFixed(0).padStart(6)} ms  median ${med.toFixed(0).padStart(6)} ms  max ${s.at(-1)!.toFixed(0).padStart(6)} ms`;
}

await using tmp = await tempDir('sealift-bench-');
const servers = await startChartServers();
const overlay = join(tmp.path, 'loopback.yaml');
await writeFile(overlay, await servers.sourcesOverlayYaml());
const helmEnv = servers.helmEnv;
const results = new Map<string, number[]>();
const record = (k: string, ms: number) => {
  results.set(k, [...(results.get(k) ?? []), ms]);
  console.log(`${k}: ${ms.toFixed(0)} ms`);
};

try {
  const envs = await listEnvironments(PROJECT_ROOT);
  // site layouts get their charts and files once, before the server stops mattering
  const siteEnvs: string[] = [];
  for (const name of envs) {
    const env = await loadEnvironment(PROJECT_ROOT, name, { overlays: [overlay] });
    if (env.chartsFrom !== 'site') continue;
    siteEnvs.push(name);
    const site = join(tmp.path, name);
    await mkdir(join(site, 'charts'), { recursive: true });
    for (const p of planReleases(env, { mode: 'upstream' })) {
      if (p.source.type === 'local') continue; // generate writes local charts into the site dir
      if (p.source.type === 'manifests') {
        await mkdir(join(site, p.sitePath), { recursive: true });
        for (const f of p.source.files)
          await writeFile(join(site, p.sitePath, f.name), Buffer.from(await (await fetch(f.url)).arrayBuffer()));
      } else {
        const args =
          p.source.type === 'oci'
            ? ['pull', p.source.url, '--version', p.source.version, '--plain-http']
            : ['pull', p.source.chart, '--repo', p.source.repoUrl, '--version', p.source.version];
        await execa(requireTool('helm'), [...args, '--destination', join(site, 'charts')], {
          env: { ...process.env, ...helmEnv },
        });
      }
    }
  }
  for (let i = 0; i < RUNS; i++) {
    const [all] = await time(() =>
      generate({ stackDir: PROJECT_ROOT, env: 'all', outDir: join(tmp.path, 'all'), overlays: [overlay] }),
    );
    record('generate --all', all);
    for (const name of envs) {
      const out = join(tmp.path, name);
      const [g] = await time(() => generate({ stackDir: PROJECT_ROOT, env: name, outDir: out, overlays: [overlay] }));
      record(`generate -e ${name}`, g);
      const [t, r] = await time(() => runHelmfile(['-e', name, 'template'], { cwd: out, env: helmEnv }));
      record(
        `helmfile -e ${name} template (${siteEnvs.includes(name) ? 'site charts' : 'loopback servers'}, ${(r.stdout.length / 1e6).toFixed(1)} MB)`,
        t,
      );
    }
  }
} finally {
  await servers.stop();
}

console.log(`\n${RUNS} runs each, ${process.platform} ${process.arch}, node ${process.version}`);
for (const [k, xs] of results) console.log(`${k.padEnd(70)} ${stats(xs)}`);
