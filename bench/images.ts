// Benchmark: resolving every image of an environment (render + extract), timed. Charts come from
// loopback servers holding ../shared/fixtures (Helm repo, OCI registry, file server).
// Prints, for the same releases with the chart cache warm:
//   - each release's `helm template` alone (one after the other) and their sum,
//   - the slowest single release,
//   - the whole resolve with releases rendered in parallel (p-limit), for a few concurrencies,
//   - the cold first run (charts pulled into an empty cache),
//   - for an environment with a registry, the time knob inference (one sentinel render per chart
//     release with images, in parallel) adds to each resolve.
// Parallel rendering should bring the total close to the slowest single render, not the sum.
//
//   node bench/images.ts [--env airgap] [--runs 3]
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadEnvironment } from '../src/config/index.ts';
import { planReleases } from '../src/generate/plan.ts';
import { resolveImages } from '../src/images/index.ts';
import { renderRelease } from '../src/render/index.ts';
import { PROJECT_ROOT } from '../src/tools.ts';
import { startChartServers } from '../test/support/chart-servers.ts';
import { tempDir } from '../test/support/process.ts';

const { values: args } = parseArgs({
  options: { env: { type: 'string', default: 'airgap' }, runs: { type: 'string', default: '3' } },
});
const env = args.env;
const runs = Math.max(1, Number(args.runs));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

await using tmp = await tempDir('sealift-bench-images-');
await using servers = await startChartServers();
Object.assign(process.env, servers.helmEnv);
const overlay = join(tmp.path, 'sources.yaml');
await writeFile(overlay, await servers.sourcesOverlayYaml());
const cacheDir = join(tmp.path, 'cache');
const stage = { stackDir: PROJECT_ROOT, env, overlays: [overlay], cacheDir };

const cold = await resolveImages({ ...stage, concurrency: 4 });
console.log(`environment ${env}: ${cold.releases.length} releases, ${cold.lock.images.length} images`);
console.log(`cold (charts pulled into an empty cache, concurrency 4): ${cold.timing.totalMs} ms`);
const knobsMs = new Map<number, number[]>();

// Rounds interleave the two measurements, so that load from other processes on the machine
// falls on both alike: each round renders every release alone, one after the other, then resolves
// the whole environment at each concurrency. Medians over the rounds are printed.
const environment = await loadEnvironment(PROJECT_ROOT, env, { overlays: [overlay] });
const plans = planReleases(environment, { mode: 'upstream' });
const concurrencies = [1, 2, 4, plans.length];
const single = new Map<string, number[]>();
const whole = new Map<number, number[]>();
const loadBefore = loadavg()[0]!;
for (let i = 0; i < runs; i++) {
  for (const p of plans) {
    const r = await renderRelease(p, { kubeVersion: environment.kubeVersion, cacheDir });
    single.set(p.name, [...(single.get(p.name) ?? []), r.helmMs ?? r.durationMs]);
  }
  for (const concurrency of concurrencies) {
    const timing = (await resolveImages({ ...stage, concurrency })).timing;
    whole.set(concurrency, [...(whole.get(concurrency) ?? []), timing.totalMs]);
    if (timing.knobsMs !== undefined) knobsMs.set(concurrency, [...(knobsMs.get(concurrency) ?? []), timing.knobsMs]);
  }
}
console.log(
  `machine: ${cpus().length} CPUs, load average ${loadBefore.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after`,
);
console.log('\nsingle renders (median of %d rounds, warm cache):', runs);
let sum = 0;
let slowest = { name: '', ms: 0 };
for (const p of plans) {
  const ms = median(single.get(p.name)!);
  sum += ms;
  if (ms > slowest.ms) slowest = { name: p.name, ms };
  console.log(
    `  ${p.name.padEnd(24)} ${String(ms).padStart(6)} ms  ${p.source.type === 'manifests' ? '(release files: download and parse, no helm)' : 'helm template'}`,
  );
}
console.log(`  ${'sum of singles'.padEnd(24)} ${String(sum).padStart(6)} ms`);
console.log(`  ${`slowest single (${slowest.name})`.padEnd(24)} ${String(slowest.ms).padStart(6)} ms`);

console.log('\nwhole resolve, render + extract (median of %d rounds, warm cache):', runs);
for (const concurrency of concurrencies) {
  const t = median(whole.get(concurrency)!);
  console.log(
    `  concurrency ${String(concurrency).padStart(2)}: ${String(t).padStart(6)} ms   (${(t / sum).toFixed(2)} x sum of singles, ${(t / slowest.ms).toFixed(2)} x slowest single)${knobsMs.has(concurrency) ? `, of which knob inference ${median(knobsMs.get(concurrency)!)} ms` : ''}`,
  );
}
