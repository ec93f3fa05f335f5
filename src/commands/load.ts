// `sealift load <bundle> --registry HOST:PORT`: flags -> LoadOptions -> a table.
import { Command, Option } from 'commander';
import { ERROR_CODES } from '../errors.ts';
import type { SignatureCheck } from '../bundle-format/index.ts';
import type { CheckStatus, CopyEngineResult, LoadResult, ReferrersLoad } from '../load/index.ts';
import { parseConcurrency, siteRegistryFromFlags, withTransportFlags, type TransportFlags } from './flags.ts';
import { interruptible } from './interrupt.ts';
import { createOutput, formatBytes, withCommonFlags, type GlobalFlags, type Output } from './output.ts';

const STATUS_MARK: Record<CheckStatus, string> = { ok: 'ok', missing: 'MISSING', mismatch: 'MISMATCH', error: 'ERROR' };

function short(d: string | undefined): string {
  return d ? d.replace(/^sha256:/, '').slice(0, 12) : '-';
}

/** The after-copy table: every image, where it is, and whether the site serves the right digest. */
export function renderCopyTable(r: CopyEngineResult): string[] {
  const rows = r.checks.map((c) => {
    const img = r.images.find((i) => i.source === c.source);
    return [c.target, short(c.expected), short(c.found), img?.status ?? '-', STATUS_MARK[c.status]];
  });
  const head = ['TARGET', 'EXPECTED', 'FOUND', 'COPY', 'CHECK'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const fmt = (cols: string[]) =>
    cols
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  const lines = [fmt(head), ...rows.map(fmt)];
  for (const f of r.failures) lines.push(`failed: ${f.source}: ${f.message}`);
  // each hint once: ten images from one plain-HTTP registry fail with the same advice
  for (const h of new Set(r.failures.flatMap((f) => (f.hint ? [f.hint] : [])))) lines.push(`hint: ${h}`);
  for (const c of r.checks.filter((x) => x.message && x.status !== 'ok'))
    lines.push(`check: ${c.target}: ${c.message}`);
  const s = r.stats;
  lines.push(
    `${r.images.length} images: ${r.images.filter((i) => i.status === 'pushed').length} pushed, ${r.images.filter((i) => i.status === 'present').length} already there, ${r.failures.length} failed; ` +
      `blobs: ${s.blobsPushed} uploaded (${formatBytes(s.bytesPushed)}), ${s.blobsMounted} mounted, ${s.blobsPresent} present`,
  );
  return lines;
}

/**
 * Prints a copy run (the table between `head` and the closing line) and, when part of it
 * failed, sets the PARTIAL_FAILURE exit code: the result is printed either way.
 */
export function reportCopy<T extends CopyEngineResult & { ok: boolean }>(
  out: Output,
  result: T,
  lines: (r: T) => { head?: string[]; tail?: string[]; done: string },
): void {
  out.result(result, (r: T) => {
    const l = lines(r);
    return [
      ...(l.head ?? []),
      ...renderCopyTable(r),
      ...(l.tail ?? []),
      r.ok ? l.done : 'NOT complete: run the same command again to finish',
    ];
  });
  if (!result.ok) process.exitCode = ERROR_CODES.PARTIAL_FAILURE.exit;
}

/** What load and bundle verify say about who made the bundle. */
export function originLine(o: SignatureCheck): string {
  if (o.verified) return `origin: signed by the key ${o.key} (${o.fingerprint}): verified`;
  return `origin: NOT checked: the bundle is ${o.signed ? 'signed' : 'not signed'}, and no --verify-key was given`;
}

/** What load or mirror did with the signatures, attestations and SBOMs (nothing when there were none). */
export function referrerLines(r: ReferrersLoad | undefined): string[] {
  if (!r || r.objects + r.failures.length === 0) return [];
  return [
    `signatures, attestations, SBOMs: ${r.objects} in place (${r.viaTag} under cosign tags, ${r.viaApi} through the referrers API, ${r.viaFallbackTag} in sha256-<digest> fallback indexes)${r.failures.length ? `; ${r.failures.length} images failed` : ''}`,
    ...r.failures.map((f) => `failed: ${f.source}: signatures, attestations, SBOMs: ${f.message}`),
  ];
}

/** The base an incremental bundle relied on, and the receipt written: the head line and the tail. */
function incrementalLines(r: LoadResult): { head: string[]; tail: string[] } {
  const head = r.base
    ? [
        `incremental bundle on base ${r.base.name} (${short(r.base.identity)}): ${r.base.absent} manifests and blobs not carried, all at the target (${r.base.mounted} mounted from another repository)`,
      ]
    : [];
  const tail = r.receipt
    ? [
        `receipt: ${r.receipt.images} images, ${r.receipt.manifests} manifests and ${r.receipt.blobs} blobs in ${r.receipt.repositories} repositories, written to ${r.receipt.files.join(' and ')}`,
      ]
    : [];
  return { head, tail };
}

export function registerLoad(program: Command): void {
  const cmd = new Command('load')
    .description(
      'Push a bundle into the site registry byte for byte (same digests); optionally write the site files for helmfile.',
    )
    .argument(
      '<bundle>',
      'bundle .tar (or a zstd/gzip-compressed .tar.zst, .tar.gz), the first part of a split bundle (.part-000), an extracted bundle directory, or - to read the bundle from stdin (cat airgap.tar | sealift load - ...)',
    )
    .requiredOption('--registry <host:port>', 'the site registry, e.g. 10.61.3.31:35000')
    .addOption(
      new Option(
        '--scheme <scheme>',
        "target naming: host-swap (REG/istio/pilot) or scoped (REG/docker.io/istio/pilot); default: the scheme the bundle's values use (registry.scheme of its environment), else host-swap",
      ).choices(['host-swap', 'scoped']),
    )
    .option('--concurrency <n>', 'blob transfers at once', '4')
    .option('--extract-to <dir>', 'write the helmfile, values, charts, release files and containerd hosts.toml here')
    .option('--recheck', 'hash the whole bundle again even if this exact file was checked before')
    .option(
      '--site-platform <os/arch>',
      "with --extract-to: install the carried tools of this platform (default: this machine's)",
    )
    .option(
      '--verify-key <pub>',
      'refuse the bundle, before the registry sees a request, unless its checksums.sha256 is signed by this PEM public key (cosign.pub)',
    )
    .option('--no-referrers', 'push none of the signatures, attestations and SBOMs the bundle carries')
    .option(
      '--receipt <file>',
      'write the site receipt (every manifest and blob found at the registry, per repository) for `sealift bundle --since`; with --extract-to it is also written to DIR/sealift-receipt.json',
    );
  withTransportFlags(cmd, '--registry');
  withCommonFlags(cmd).action(
    async (
      bundle: string,
      flags: GlobalFlags &
        TransportFlags & {
          registry: string;
          scheme?: 'host-swap' | 'scoped';
          concurrency?: string;
          extractTo?: string;
          recheck?: boolean;
          sitePlatform?: string;
          verifyKey?: string;
          /** commander's --no-referrers */
          referrers?: boolean;
          receipt?: string;
        },
    ) => {
      const { others: _none, ...siteRegistry } = siteRegistryFromFlags(flags.registry, flags);
      const out = createOutput(flags);
      const { loadBundle } = await import('../load/index.ts');
      const { closeRegistryConnections } = await import('../oci/registry.ts');
      try {
        const result = await interruptible((signal) =>
          loadBundle({
            bundle,
            registry: siteRegistry,
            ...(flags.scheme ? { scheme: flags.scheme } : {}),
            concurrency: parseConcurrency(flags.concurrency),
            ...(flags.extractTo ? { extractTo: flags.extractTo } : {}),
            ...(flags.recheck ? { recheck: true } : {}),
            ...(flags.sitePlatform ? { sitePlatform: flags.sitePlatform } : {}),
            ...(flags.verifyKey ? { verifyKey: flags.verifyKey } : {}),
            ...(flags.referrers === false ? { referrers: false } : {}),
            ...(flags.receipt ? { receipt: flags.receipt } : {}),
            onEvent: out.onEvent,
            signal,
          }),
        );
        reportCopy(out, result, (r: LoadResult) => ({
          head: [
            `bundle ${r.bundle}: ${r.verified.files} files (${formatBytes(r.verified.bytes)}) match checksums.sha256${r.verified.cached ? ' (checked before; file unchanged)' : ''}`,
            originLine(r.origin),
            ...incrementalLines(r).head,
          ],
          tail: [
            ...referrerLines(r.referrers),
            ...(r.siteFiles
              ? [
                  `site files: ${r.siteFiles.files.length} files and ${r.siteFiles.hostsToml.length} containerd hosts.toml in ${r.siteFiles.dir}`,
                  ...(r.siteTools
                    ? [
                        `site tools (${r.siteTools.platform}): ${r.siteTools.installed.length} installed; next: . ${r.siteTools.envFile}, then the steps in ${r.siteTools.runbook}`,
                      ]
                    : []),
                ]
              : []),
            ...incrementalLines(r).tail,
          ],
          done: `loaded into ${r.registry}`,
        }));
      } finally {
        out.close();
        await closeRegistryConnections();
      }
    },
  );
  program.addCommand(cmd);
}
