// The newest version of an OCI chart, read from its registry's tag list. helm itself picks the
// newest only among strict semver tags, so a repository tagged `v1.16.1` (cert-manager, KServe)
// has no newest to helm; here a leading "v" is allowed, as semver's own parser allows it.
import semver from 'semver';
import { SealiftError } from '../errors.ts';
import { closeRegistryConnections, RegistryClient } from '../oci/registry.ts';

/** A tag as a version: OCI tags cannot hold "+", so helm pushes build metadata as "_". */
function versionOf(tag: string): semver.SemVer | null {
  return semver.parse(tag.replace(/_/g, '+'));
}

/**
 * The newest semver tag (`1.2.3` or `v1.2.3`), the tag as it is written; prereleases only with
 * `devel`; tags that are no version (`latest`, `main`, `sha-abc`) are ignored. Of two tags of
 * one version (`1.2.3` and `v1.2.3`) the one without "v" wins, as helm would name it.
 */
export function newestTag(tags: readonly string[], opts: { devel?: boolean } = {}): string | undefined {
  let best: { tag: string; version: semver.SemVer } | undefined;
  for (const tag of tags) {
    const version = versionOf(tag);
    if (!version || (!opts.devel && version.prerelease.length > 0)) continue;
    const order = best ? semver.compareBuild(version, best.version) : 1;
    if (order > 0 || (order === 0 && best!.tag.startsWith('v') && !tag.startsWith('v'))) best = { tag, version };
  }
  return best?.tag;
}

/** The newest version tag of `oci://host/path/chart`, from the registry's tags/list. */
export async function newestOciVersion(
  chartUrl: string,
  opts: { plainHttp?: boolean; devel?: boolean; signal?: AbortSignal },
): Promise<string> {
  const rest = chartUrl.replace(/^oci:\/\//, '');
  const slash = rest.indexOf('/');
  const host = rest.slice(0, slash);
  const repo = rest.slice(slash + 1);
  const client = new RegistryClient(host, { hosts: { [host]: { plainHttp: opts.plainHttp === true } } });
  let tags: string[];
  try {
    tags = await client.listTags(repo, opts.signal);
  } finally {
    await closeRegistryConnections();
  }
  const tag = newestTag(tags, opts);
  if (!tag) {
    const shown = tags.slice(0, 8).join(', ') + (tags.length > 8 ? ', ...' : '');
    throw new SealiftError(
      'NOT_FOUND',
      `${chartUrl}: none of its ${tags.length} tag(s) is a ${opts.devel ? '' : 'released '}semantic version${tags.length ? ` (${shown})` : ''}`,
      {
        hint: opts.devel
          ? 'Give the version with --version.'
          : 'Give the version with --version, or --devel to take prereleases (1.2.0-rc.1) too.',
        details: { chart: chartUrl, tags: tags.length },
      },
    );
  }
  return tag;
}
