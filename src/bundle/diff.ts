// `sealift bundle diff A B`, the pure part: two bundle contents in, what B has that A has not.
// An image is matched by its reference: the same reference at another digest is "changed".
// Bytes new in B are the blobs (manifests, configs, layers) B stores and A lacks, by digest: what
// an update from A to B has to carry across the gap.

export interface DiffImage {
  reference: string;
  digest: string;
}

export interface DiffFile {
  /** path inside the bundle (a chart archive, a site file) */
  path: string;
  sha256: string;
}

/** What a diff needs of one bundle. */
export interface DiffInput {
  images: readonly DiffImage[];
  /** every blob of the image layout, digest -> size */
  blobs: ReadonlyMap<string, number>;
  charts: readonly DiffFile[];
  files: readonly DiffFile[];
  /** carried tools (bin/) */
  tools: readonly DiffFile[];
}

export interface ChangedImage {
  reference: string;
  from: string;
  to: string;
}

export interface FileChanges {
  added: string[];
  removed: string[];
  changed: string[];
}

export interface BundleDiff {
  images: { added: DiffImage[]; removed: DiffImage[]; changed: ChangedImage[]; unchanged: number };
  /** blobs B holds that A does not: their count and bytes */
  newBlobs: number;
  newBytes: number;
  charts: FileChanges;
  files: FileChanges;
  tools: FileChanges;
  /** true when nothing differs */
  same: boolean;
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function diffFiles(a: readonly DiffFile[], b: readonly DiffFile[]): FileChanges {
  const before = new Map(a.map((f) => [f.path, f.sha256]));
  const after = new Map(b.map((f) => [f.path, f.sha256]));
  const added = [...after.keys()].filter((p) => !before.has(p)).sort(byName);
  const removed = [...before.keys()].filter((p) => !after.has(p)).sort(byName);
  const changed = [...after]
    .filter(([p, sha]) => before.has(p) && before.get(p) !== sha)
    .map(([p]) => p)
    .sort(byName);
  return { added, removed, changed };
}

export function diffBundles(a: DiffInput, b: DiffInput): BundleDiff {
  const before = new Map(a.images.map((i) => [i.reference, i.digest]));
  const after = new Map(b.images.map((i) => [i.reference, i.digest]));
  const added: DiffImage[] = [];
  const changed: ChangedImage[] = [];
  let unchanged = 0;
  for (const [reference, digest] of after) {
    const prior = before.get(reference);
    if (prior === undefined) added.push({ reference, digest });
    else if (prior !== digest) changed.push({ reference, from: prior, to: digest });
    else unchanged++;
  }
  const removed = [...before]
    .filter(([reference]) => !after.has(reference))
    .map(([reference, digest]) => ({ reference, digest }));
  let newBlobs = 0;
  let newBytes = 0;
  for (const [digest, size] of b.blobs) {
    if (a.blobs.has(digest)) continue;
    newBlobs++;
    newBytes += size;
  }
  const charts = diffFiles(a.charts, b.charts);
  const files = diffFiles(a.files, b.files);
  const tools = diffFiles(a.tools, b.tools);
  const none = (c: FileChanges) => c.added.length + c.removed.length + c.changed.length === 0;
  const sort = <T extends { reference: string }>(xs: T[]) => xs.sort((x, y) => byName(x.reference, y.reference));
  return {
    images: { added: sort(added), removed: sort(removed), changed: sort(changed), unchanged },
    newBlobs,
    newBytes,
    charts,
    files,
    tools,
    same:
      added.length + removed.length + changed.length === 0 &&
      newBlobs === 0 &&
      none(charts) &&
      none(files) &&
      none(tools),
  };
}
