// The model images of an environment (models:) are built, not pulled: their references
// (sealift.invalid/models/<name>:<tag>, src/models) name no registry. bundle hands the requests
// for them here; each is built into the bundle's layout and reported as if it had been copied,
// so the lock, bundle.json and load treat it like any image.
import type { Environment } from '../config/index.ts';
import { SealiftError } from '../errors.ts';
import { noEvents, type RunOptions } from '../events.ts';
import { buildModelImage, findModelShell, MODEL_IMAGE_HOST, modelImageReference } from '../models/index.ts';
import type { OciLayout } from '../oci/layout.ts';
import { formatPlatform } from '../oci/types.ts';
import type { PulledImage } from './pull.ts';
import type { ImagePull } from './requests.ts';

/** Splits the pulls into model images (built) and the rest (pulled). */
export function splitModelPulls(pulls: readonly ImagePull[]): { models: ImagePull[]; images: ImagePull[] } {
  const models = pulls.filter((p) => p.request.ref.registry === MODEL_IMAGE_HOST);
  return { models, images: pulls.filter((p) => !models.includes(p)) };
}

export async function buildModelPulls(
  pulls: readonly ImagePull[],
  env: Environment,
  layout: OciLayout,
  opts: RunOptions = {},
): Promise<{ images: PulledImage[]; blobs: Map<string, number> }> {
  const onEvent = opts.onEvent ?? noEvents;
  const byRef = new Map(env.models.map((m) => [modelImageReference(m), m]));
  for (const [ref, m] of byRef) {
    if (!pulls.some((p) => p.request.reference === ref))
      onEvent({
        type: 'warn',
        message: `model ${m.name} (${ref}) is in the environment but not in the image list: run sealift images -e ${env.name} so that the bundle carries it`,
      });
  }
  const images: PulledImage[] = [];
  const blobs = new Map<string, number>();
  if (pulls.length === 0) return { images, blobs };
  const shell = findModelShell();
  onEvent({ type: 'phase', name: 'building model images', total: pulls.length });
  for (const pull of pulls) {
    const model = byRef.get(pull.request.reference);
    if (!model) {
      throw new SealiftError(
        'CONFIG_INVALID',
        `the image list names the model image ${pull.request.reference} (${pull.request.where}), but ${env.file} lists no such model`,
        {
          hint: `Add it under models: (name, from, format, tag), or run sealift images -e ${env.name} again. Known: ${[...byRef.keys()].join(', ') || 'none'}.`,
        },
      );
    }
    const built = await buildModelImage(model, {
      layout,
      baseDir: env.stackDir,
      shell,
      onEvent,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const sel = pull.platforms;
    if (sel.kind === 'only' && !sel.platforms.some((p) => formatPlatform(p) === built.platform)) {
      // the shell decides the image's platform; the model files are the same everywhere
      onEvent({
        type: 'warn',
        message: `model image ${pull.request.reference} is ${built.platform} (its shell ${shell}), not ${sel.platforms.map(formatPlatform).join(', ')}: set BUSYBOX_BIN to a static busybox for the site's platform`,
      });
    }
    for (const b of built.blobs) blobs.set(b.digest, b.size);
    images.push({
      pull,
      result: {
        root: built.root,
        source: built.root,
        kind: 'exact',
        platforms: [built.platform],
        blobs: built.blobs,
        manifests: [built.root],
      },
    });
  }
  return { images, blobs };
}
