// `sealift size -e <env>`: flags -> sizeEnvironment -> a table, the fit verdict and the exit code.
// The stage code is imported when the command runs.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { ERROR_CODES, SealiftError } from '../errors.ts';
import type { Amounts, SizeResult } from '../size/index.ts';
import { withPreflightFlags } from './check.ts';
import { collect, overlaysFrom, parseConcurrency, stackDirFrom } from './flags.ts';
import { createOutput, formatBytes, formatTable, withCommonFlags, type GlobalFlags } from './output.ts';

interface SizeFlags extends GlobalFlags {
  env?: string;
  stack?: string;
  overlay?: string[];
  manifests?: string[];
  cacheDir?: string;
  concurrency?: string;
}

const cores = (n: number) => (n === 0 ? '-' : `${Number(n.toFixed(3))}`);
const bytes = (n: number) => (n === 0 ? '-' : formatBytes(n));
const count = (n: number) => (n === 0 ? '-' : String(n));

function amountCells(req: Amounts, lim: Amounts): string[] {
  return [
    cores(req.cpu),
    cores(lim.cpu),
    bytes(req.memory),
    bytes(lim.memory),
    count(req['nvidia.com/gpu']),
    bytes(req['ephemeral-storage']),
  ];
}

function report(r: SizeResult): string[] {
  const head = ['RELEASE', 'PODS', 'CPU REQ', 'CPU LIM', 'MEM REQ', 'MEM LIM', 'GPU', 'EPHEMERAL', 'PVC'];
  const rows = r.releases.map((x) => [
    x.release,
    String(x.pods),
    ...amountCells(x.requests, x.limits),
    bytes(x.pvcStorage),
  ]);
  rows.push([
    'TOTAL',
    String(r.totals.pods),
    ...amountCells(r.totals.requests, r.totals.limits),
    bytes(r.totals.pvcStorage),
  ]);
  const lines = formatTable(head, rows);
  if (r.containersWithoutRequests.length) {
    lines.push(
      `containers without requests (${r.containersWithoutRequests.length}): they are scheduled anywhere and evicted first`,
    );
    for (const c of r.containersWithoutRequests)
      lines.push(`  ${c.release}: ${c.workload} container ${c.container} (no ${c.missing.join(', ')} request)`);
  }
  const transient = r.workloads.filter((w) => w.transient);
  if (transient.length)
    lines.push(
      `not in the totals: ${transient.length} Jobs/CronJobs (they finish): ${transient.map((w) => w.name).join(', ')}`,
    );
  if (r.fit) {
    const f = r.fit;
    lines.push(
      `cluster: ${f.nodes} nodes x ${f.perNode.cpu} CPU / ${formatBytes(f.perNode.memory)} / ${f.perNode['nvidia.com/gpu']} GPU, ${f.headroomPercent}% kept free`,
    );
    for (const x of f.resources) {
      const fmt = x.resource === 'memory' ? formatBytes : (n: number) => String(Number(n.toFixed(3)));
      lines.push(
        `  ${x.resource.padEnd(15)} ${fmt(x.requested)} requested of ${fmt(x.usable)} usable (${fmt(x.capacity)} in all): ${x.verdict}`,
      );
    }
    for (const p of f.podsTooLarge)
      lines.push(`  ${p.workload} requests ${p.requested} ${p.resource} per pod; a node has ${p.node}`);
    lines.push(`size ${r.environment}: ${f.verdict}`);
  } else {
    lines.push(
      `size ${r.environment}: no cluster block in the environment, so no fit verdict (environments/README.md: cluster)`,
    );
  }
  return lines;
}

async function runSize(flags: SizeFlags): Promise<void> {
  const out = createOutput(flags);
  if (!flags.env)
    throw new SealiftError('USAGE', 'sealift size needs -e <env>', { hint: 'e.g. sealift size -e airgap' });
  const concurrency = parseConcurrency(flags.concurrency);
  const { sizeEnvironment } = await import('../size/index.ts');
  const r = await sizeEnvironment({
    stackDir: stackDirFrom(flags.stack),
    env: flags.env,
    ...overlaysFrom(flags.overlay),
    ...(flags.manifests?.length ? { manifests: flags.manifests.map((f) => resolve(f)) } : {}),
    ...(flags.cacheDir ? { cacheDir: resolve(flags.cacheDir) } : {}),
    concurrency,
    onEvent: out.onEvent,
  });
  if (r.fit?.verdict === 'tight')
    out.onEvent({
      type: 'warn',
      code: 'DOES_NOT_FIT',
      message: `${r.environment}: the requests fit the cluster only by using the ${r.fit.headroomPercent}% headroom`,
    });
  out.result(r, report);
  if (!r.ok) process.exitCode = ERROR_CODES.DOES_NOT_FIT.exit;
}

export function registerSize(program: Command): void {
  withCommonFlags(
    withPreflightFlags(
      program
        .command('size')
        .description(
          "What the stack asks of the cluster, from the rendered manifests: replicas x requests and limits per release and in total, against the environment's cluster block",
        ),
      '',
    )
      .option(
        '--manifests <file>',
        'size this rendered output (e.g. of `helmfile -e <env> template` at the site) instead of rendering the environment (repeatable)',
        collect,
      )
      .option('--concurrency <n>', 'helm renders at once (default 4)')
      .addHelpText(
        'after',
        `
Counts Deployments, StatefulSets, DaemonSets (one pod per node of the cluster block), ReplicaSets
and Pods; Jobs and CronJobs are listed but left out of the totals. Pods made at run time (model
pods, injected sidecars) are not in any render and not counted. A container with a limit and no
request requests its limit.

--json: {ok, environment, releases: [{release, workloads, pods, requests, limits, pvcStorage}],
totals: {workloads, pods, requests, limits, pvcStorage}, workloads, containersWithoutRequests,
cluster, fit: {verdict, resources, podsTooLarge}, problems}; amounts in base units: cpu in cores,
memory, ephemeral-storage and pvcStorage in bytes, nvidia.com/gpu in devices.

Exit codes: 0 fits (or no cluster block; a warning when only the headroom holds it);
${ERROR_CODES.DOES_NOT_FIT.exit} the requests, or one pod, do not fit the cluster; ${ERROR_CODES.CONFIG_INVALID.exit} an invalid environment; ${ERROR_CODES.USAGE.exit} usage;
${ERROR_CODES.RENDER_FAILED.exit} helm could not render a chart.`,
      ),
  ).action((flags: SizeFlags) => runSize(flags));
}
