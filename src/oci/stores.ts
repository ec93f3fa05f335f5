// The two stores the copy walk meets: a repository in a registry, and an OCI image layout.
import type { Readable } from 'node:stream';
import { SealiftError } from '../errors.ts';
import type { ImageSource, ImageTarget, PushManifestOptions } from './copy.ts';
import { ANNOTATION_REF_NAME, ANNOTATION_SOURCE, type OciLayout } from './layout.ts';
import type { RegistryClient } from './registry.ts';
import { isDigest, parseManifest, type Descriptor, type Digest, type RawManifest } from './types.ts';
import { stat } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';

export function registrySource(client: RegistryClient, repo: string): ImageSource {
  return {
    name: `${client.host}/${repo}`,
    fetchManifest: (sel, signal) => client.fetchManifest(repo, typeof sel === 'string' ? sel : sel.digest, signal),
    fetchBlob: (desc, opts) => client.fetchBlob(repo, desc, opts),
    fetchBlobFrom: (desc, offset, signal) => client.fetchBlobFrom(repo, desc, offset, signal),
  };
}

/** A repository as a target; `mountFrom` lists repositories on the same registry that may hold the blobs. */
export function registryTarget(client: RegistryClient, repo: string, opts: { mountFrom?: string[] } = {}): ImageTarget {
  return {
    name: `${client.host}/${repo}`,
    hasBlob: (desc, signal) => client.blobExists(repo, desc.digest, signal),
    async pushBlob(desc, open, signal) {
      for (const from of opts.mountFrom ?? []) {
        if (from !== repo && (await client.mountBlob(repo, from, desc.digest, signal))) return 'mounted';
      }
      return client.pushBlob(repo, desc, open, signal);
    },
    async pushManifest(raw, o: PushManifestOptions, signal) {
      const existing = await client.manifestExists(repo, o.root && o.tag ? o.tag : raw.digest, signal);
      if (existing?.digest === raw.digest) return;
      await client.pushManifest(repo, o.root && o.tag ? o.tag : raw.digest, raw.bytes, raw.mediaType, signal);
    },
  };
}

/** Reads images out of a layout by ref name, source reference or digest. */
export function layoutSource(layout: OciLayout): ImageSource {
  return {
    name: layout.dir,
    async fetchManifest(sel, _signal): Promise<RawManifest> {
      if (typeof sel !== 'string') return layout.readManifest(sel);
      const found = await layout.find(sel);
      if (found.length > 1 && new Set(found.map((f) => f.digest)).size > 1) {
        throw new SealiftError(
          'BUNDLE_INVALID',
          `"${sel}" names ${found.length} different images in ${layout.dir}; use the full source reference or a digest`,
        );
      }
      const hit = found[0];
      if (hit) return layout.readManifest(hit);
      if (isDigest(sel)) {
        const path = layout.blobPath(sel as Digest);
        const st = await stat(path).catch(() => undefined);
        if (st) return parseManifest(await readFile(path), { expected: sel as Digest, where: path });
      }
      throw new SealiftError('NOT_FOUND', `"${sel}" is not in the layout ${layout.dir}`);
    },
    fetchBlob: (desc: Descriptor, opts) => layout.fetchBlob(desc, opts.onBytes ? { onBytes: opts.onBytes } : {}),
  };
}

/** Writes into a layout; the root is recorded in index.json under its full source reference (else its tag). */
export function layoutTarget(layout: OciLayout): ImageTarget {
  return {
    name: layout.dir,
    hasBlob: (desc) => layout.hasBlob(desc),
    pushBlob: (desc, open: () => Promise<Readable>, _signal, openFrom) => layout.ingestBlob(desc, open, openFrom),
    async pushManifest(raw, o) {
      await layout.writeBlob({ digest: raw.digest, size: raw.bytes.byteLength }, raw.bytes);
      if (!o.root) return;
      const annotations: Record<string, string> = { ...o.annotations };
      // the full reference (docker.io/istio/pilot:1.23.2, which the ref.name grammar allows) when
      // the source is known: many images of a stack share a tag, and a bare tag would be ambiguous
      const refName = o.annotations?.[ANNOTATION_SOURCE] ?? o.tag;
      if (refName) annotations[ANNOTATION_REF_NAME] = refName;
      await layout.addManifest(
        { mediaType: raw.mediaType, digest: raw.digest, size: raw.bytes.byteLength },
        annotations,
      );
    },
  };
}

export { ANNOTATION_SOURCE };
