// A model as an OCI image in KServe's modelcar form, built by sealift itself into an OCI layout.
// KServe (pkg/webhook/admission/pod, 0.15) runs the image twice: as an init container
// `sh -c "[ -d /models ] && [ \"$(ls -A /models)\" ] ..."` and as a sidecar
// `sh -c "ln -sf /proc/$$/root/models /mnt/models && sleep infinity"`, the model server reading
// /mnt/models through the shared process namespace. So the image holds the model files under
// /models and a static shell with echo, ls, ln, sleep and [ : busybox (Debian busybox-static),
// its applets as symlinks in /bin, PATH=/bin.
//
// Two layers: the shell (the same for every model, stored once) and the model files. Every byte
// is a function of the inputs (file contents, their relative names, the model's name, tag and
// format): fixed mtimes and owners, sorted entries, normalized modes, no timestamps in the
// config. Same inputs, same digest.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { basename, isAbsolute, join, relative, resolve } from 'node:path';
import { SealiftError } from '../errors.ts';
import { noEvents, type RunOptions } from '../events.ts';
import { fetchFile } from '../oci/http.ts';
import { ANNOTATION_REF_NAME, ANNOTATION_SOURCE, type OciLayout } from '../oci/layout.ts';
import { MediaTypes, sha256Digest, type Descriptor, type Digest } from '../oci/types.ts';
import { readElfInfo } from './elf.ts';
import { writeLayer, type LayerEntry } from './layer.ts';
import { modelImageReference } from './reference.ts';

export interface ModelSpec {
  name: string;
  /** a directory or file (relative to baseDir), or an http(s) URL of one file */
  from: string;
  /** the KServe model format (sklearn, xgboost, ...): recorded in the image's annotations */
  format: string;
  tag: string;
}

export interface BuildModelOptions extends RunOptions {
  layout: OciLayout;
  /** what a relative `from` is relative to (the stack directory) */
  baseDir: string;
  /** a static shell binary: busybox */
  shell: string;
}

export interface ModelImage {
  reference: string;
  /** the manifest */
  root: Descriptor;
  platform: string;
  /** the config and both layers */
  blobs: Descriptor[];
}

/** busybox applets KServe's two modelcar commands call, plus cat and test for people debugging */
const APPLETS = ['sh', 'echo', 'ls', 'ln', 'sleep', '[', 'test', 'cat'];

const isUrl = (s: string) => /^https?:\/\//.test(s);

async function modelEntries(root: string, where: string): Promise<LayerEntry[]> {
  const st = await stat(root).catch(() => undefined);
  if (!st) {
    throw new SealiftError('NOT_FOUND', `${where}: ${root} does not exist`, {
      hint: 'Point models[].from at the model directory or file (relative to the stack directory), or an http(s) URL.',
    });
  }
  const out: LayerEntry[] = [{ type: 'dir', path: 'models', mode: 0o755 }];
  if (st.isFile()) {
    out.push({ type: 'file', path: `models/${basename(root)}`, mode: 0o644, size: st.size, source: root });
    return out;
  }
  const walk = async (dir: string): Promise<void> => {
    const names = (await readdir(dir)).sort();
    for (const n of names) {
      const p = join(dir, n);
      const s = await stat(p);
      const rel = `models/${relative(root, p).split('\\').join('/')}`;
      if (s.isDirectory()) {
        out.push({ type: 'dir', path: rel, mode: 0o755 });
        await walk(p);
      } else if (s.isFile()) {
        out.push({ type: 'file', path: rel, mode: 0o644, size: s.size, source: p });
      }
    }
  };
  await walk(root);
  if (out.length === 1) {
    throw new SealiftError('CONFIG_INVALID', `${where}: ${root} holds no files`, {
      hint: "KServe's modelcar init container refuses an empty /models: put the model files there.",
    });
  }
  return out;
}

function shellEntries(shell: string, size: number): LayerEntry[] {
  return [
    { type: 'dir', path: 'bin', mode: 0o755 },
    { type: 'file', path: 'bin/busybox', mode: 0o755, size, source: shell },
    ...[...APPLETS].sort().map((a): LayerEntry => ({ type: 'symlink', path: `bin/${a}`, target: 'busybox' })),
    // the sidecar's symlink target's parent is a mounted volume; /tmp for anything that wants one
    { type: 'dir', path: 'tmp', mode: 0o1777 },
  ];
}

async function sha256Of(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

/** Writes a blob whose bytes are in memory (config, manifest) into the layout. */
export async function putJson(layout: OciLayout, mediaType: string, value: unknown): Promise<Descriptor> {
  const bytes = Buffer.from(JSON.stringify(value));
  const desc: Descriptor = { mediaType, digest: sha256Digest(bytes), size: bytes.length };
  await layout.writeBlob(desc, bytes);
  return desc;
}

export async function buildModelImage(model: ModelSpec, opts: BuildModelOptions): Promise<ModelImage> {
  const onEvent = opts.onEvent ?? noEvents;
  const reference = modelImageReference(model);
  const where = `models ${model.name}`;
  const elf = await readElfInfo(opts.shell);
  if (!elf.static) {
    throw new SealiftError(
      'CONFIG_INVALID',
      `${opts.shell} is dynamically linked; the model image has no libc for it`,
      {
        hint: "Use a static shell: Debian's busybox-static installs one as /bin/busybox (or set BUSYBOX_BIN).",
      },
    );
  }
  const ingest = join(opts.layout.dir, '.ingest');
  await mkdir(ingest, { recursive: true });
  // random names in .ingest: a killed build leaves nothing that the layout keeps (OciLayout.open drops them)
  const temp = (what: string) => join(ingest, `${what}-${randomBytes(6).toString('hex')}`);
  const temps: string[] = [];
  try {
    let source = isAbsolute(model.from) ? model.from : resolve(opts.baseDir, model.from);
    if (isUrl(model.from)) {
      const name = basename(new URL(model.from).pathname) || 'model';
      const dir = temp('download');
      temps.push(dir);
      source = join(dir, name);
      await fetchFile(model.from, source, { onEvent, ...(opts.signal ? { signal: opts.signal } : {}) });
    }
    const shellSize = (await stat(opts.shell)).size;
    const layers: { entries: LayerEntry[]; what: string }[] = [
      { entries: shellEntries(opts.shell, shellSize), what: 'shell' },
      { entries: await modelEntries(source, where), what: 'model' },
    ];
    const written: Descriptor[] = [];
    const diffIds: string[] = [];
    for (const l of layers) {
      const file = temp(`layer-${l.what}`);
      temps.push(file);
      const layer = await writeLayer(l.entries, file);
      const desc: Descriptor = { mediaType: MediaTypes.ociLayerGzip, digest: layer.digest as Digest, size: layer.size };
      await opts.layout.writeBlob(desc, createReadStream(file));
      written.push(desc);
      diffIds.push(layer.diffId);
    }
    const config = await putJson(opts.layout, MediaTypes.ociConfig, {
      architecture: elf.architecture,
      os: 'linux',
      config: { Env: ['PATH=/bin'], WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: [
        { created_by: `sealift: static shell busybox (sha256:${await sha256Of(opts.shell)}) for the modelcar sidecar` },
        { created_by: `sealift: model ${model.name} (${model.format}) under /models` },
      ],
    });
    const annotations = {
      'org.opencontainers.image.title': model.name,
      'org.opencontainers.image.version': model.tag,
      'io.sealift.model.format': model.format,
    };
    const root = await putJson(opts.layout, MediaTypes.ociManifest, {
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config,
      layers: written,
      annotations,
    });
    await opts.layout.addManifest(root, { [ANNOTATION_SOURCE]: reference, [ANNOTATION_REF_NAME]: reference });
    onEvent({ type: 'image:done', ref: reference, digest: root.digest });
    return { reference, root, platform: `linux/${elf.architecture}`, blobs: [config, ...written] };
  } finally {
    for (const t of temps) await rm(t, { recursive: true, force: true });
  }
}
