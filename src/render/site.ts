// Rendering from a site dir (what `load --extract-to` writes): each release's chart archive and
// release files are taken from beside the helmfile (charts/<chart>-<version>.tgz,
// releases/<release>/<file>) when they are there, so nothing is fetched at the site.
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { ReleasePlan } from '../generate/plan.ts';
import type { RenderTarget } from './index.ts';

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

/** The plans as render targets that read the site dir's files where it has them. */
export async function siteRenderTargets(plans: readonly ReleasePlan[], siteDir: string): Promise<RenderTarget[]> {
  return Promise.all(
    plans.map(async (p): Promise<RenderTarget> => {
      const local = join(siteDir, p.sitePath);
      if (p.source.type !== 'manifests') return (await exists(local)) ? { ...p, chartFile: local } : p;
      const files = await Promise.all(
        p.source.files.map(async (f) => {
          const path = join(local, f.name);
          return (await exists(path)) ? { ...f, url: path } : f;
        }),
      );
      return { ...p, source: { type: 'manifests', files } };
    }),
  );
}
