// `sealift bundle inspect <bundle>` and `sealift bundle diff A B`: flags -> src/bundle -> a table.
import { Command } from 'commander';
import type { BundleDiffResult, BundleInspection } from '../bundle/index.ts';
import { createOutput, formatBytes, formatTable, withCommonFlags, type GlobalFlags } from './output.ts';

const short = (digest: string) => digest.slice(0, 'sha256:'.length + 12);

function baseLine(b: BundleInspection['base']): string {
  if (!b) return 'full bundle';
  return `incremental on ${b.name} (${b.from}${b.registry ? ` of ${b.registry}` : ''}, bundle.json ${short(b.identity)}, made ${b.createdAt}${b.parent ? `, itself incremental on ${short(b.parent)}` : ''}): ${b.absent} manifests and blobs (${formatBytes(b.absentBytes)}) not carried${b.siteTools.length ? `, ${b.siteTools.length} site tools unchanged` : ''}`;
}

function inspectionLines(r: BundleInspection): string[] {
  const t = r.totals;
  const lines = [
    `bundle ${r.bundle} (${r.kind}), made ${r.createdAt} by ${r.tool}${r.environment ? ` for ${r.environment}` : ''}${r.registry ? `, registry ${r.registry}` : ''}`,
    `base: ${baseLine(r.base)}`,
    `signature: ${r.signature}`,
    '',
    `images (${r.images.length}):`,
    ...formatTable(
      ['REFERENCE', 'DIGEST', 'PLATFORMS', 'BLOBS', 'SIZE', 'IN'],
      r.images.map((i) => [
        i.reference,
        i.digest,
        i.platforms.join(',') || '-',
        String(i.blobs),
        formatBytes(i.bytes),
        i.carried ? 'carried' : 'base',
      ]),
    ).map((l) => `  ${l}`),
  ];
  if (r.charts.length) {
    lines.push('', `charts (${r.charts.length}):`);
    lines.push(
      ...formatTable(
        ['RELEASE', 'CHART', 'VERSION', 'PATH', 'SIZE'],
        r.charts.map((c) => [c.release, c.chart, c.version, c.path, formatBytes(c.size)]),
      ).map((l) => `  ${l}`),
    );
  }
  if (r.files.length) {
    lines.push('', `site files (${r.files.length}):`);
    lines.push(
      ...formatTable(
        ['PATH', 'RELEASE', 'SIZE'],
        r.files.map((f) => [f.path, f.release ?? '-', formatBytes(f.size)]),
      ).map((l) => `  ${l}`),
    );
  }
  lines.push('', `tools (${r.tools.length}):${r.tools.length ? '' : ' none carried'}`);
  if (r.tools.length)
    lines.push(
      ...formatTable(
        ['PATH', 'SIZE'],
        r.tools.map((f) => [f.path, formatBytes(f.size)]),
      ).map((l) => `  ${l}`),
    );
  lines.push(
    '',
    `totals: ${t.images} images, ${t.blobs} unique blobs (${formatBytes(t.blobBytes)}; sharing saved ${formatBytes(t.savedBySharing)}), ${t.charts} charts, ${r.files.length} site files, ${r.tools.length} tools; ${formatBytes(t.archiveBytes)} on disk`,
  );
  return lines;
}

function diffLines(d: BundleDiffResult): string[] {
  if (d.same)
    return [
      `${d.a} and ${d.b} hold the same images, blobs, charts, site files and tools`,
      `base of A: ${baseLine(d.baseA)}`,
      `base of B: ${baseLine(d.baseB)}`,
    ];
  const lines = [`${d.a} -> ${d.b}`, `base of A: ${baseLine(d.baseA)}`, `base of B: ${baseLine(d.baseB)}`];
  const i = d.images;
  lines.push(
    `images: ${i.added.length} added, ${i.removed.length} removed, ${i.changed.length} changed, ${i.unchanged} unchanged`,
  );
  for (const x of i.added) lines.push(`  + ${x.reference} ${short(x.digest)}`);
  for (const x of i.removed) lines.push(`  - ${x.reference} ${short(x.digest)}`);
  for (const x of i.changed) lines.push(`  ~ ${x.reference} ${short(x.from)} -> ${short(x.to)}`);
  lines.push(`new in B: ${d.newBlobs} blobs, ${formatBytes(d.newBytes)} (${d.newBytes} bytes)`);
  for (const [what, c] of [
    ['charts', d.charts],
    ['site files', d.files],
    ['tools', d.tools],
  ] as const) {
    if (c.added.length + c.removed.length + c.changed.length === 0) continue;
    lines.push(`${what}: ${c.added.length} added, ${c.removed.length} removed, ${c.changed.length} changed`);
    for (const p of c.added) lines.push(`  + ${p}`);
    for (const p of c.removed) lines.push(`  - ${p}`);
    for (const p of c.changed) lines.push(`  ~ ${p}`);
  }
  return lines;
}

export function bundleInspectCommands(): Command[] {
  const inspect = new Command('inspect')
    .description(
      'Show what a bundle holds: images (digest, platforms, blobs, size), charts, site files, carried tools, base, signature, totals. Reads bundle.json, checksums.sha256 and the archive index only, so it is fast and checks no bytes: `sealift bundle verify` is the integrity check.',
    )
    .argument('<bundle>', 'the bundle (.tar, .tar.part-000 or directory)');
  withCommonFlags(inspect).action(async (bundle: string) => {
    const out = createOutput(inspect.optsWithGlobals<GlobalFlags>());
    const { inspectBundle } = await import('../bundle/index.ts');
    try {
      out.result(await inspectBundle(bundle), inspectionLines);
    } finally {
      out.close();
    }
  });

  const diff = new Command('diff')
    .description(
      'Compare two bundles: images added, removed and changed (same reference, other digest), the blobs and bytes B holds that A lacks (what an update carries), charts, site files and tools changed (by the sha256 checksums.sha256 lists). Exits 0 whatever the difference; a non-bundle argument is an error naming it. Checks no bytes: `sealift bundle verify` does.',
    )
    .argument('<a>', 'the older bundle')
    .argument('<b>', 'the newer bundle');
  withCommonFlags(diff).action(async (a: string, b: string) => {
    const out = createOutput(diff.optsWithGlobals<GlobalFlags>());
    const { diffBundleFiles } = await import('../bundle/index.ts');
    try {
      out.result(await diffBundleFiles(a, b), diffLines);
    } finally {
      out.close();
    }
  });
  return [inspect, diff];
}
