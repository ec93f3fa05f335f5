// Blob uploads as the registry saw them, from a recording proxy's requests (fault-proxy.ts).
import type { RecordedRequest } from './fault-proxy.ts';

/** digest -> how many uploads of it the registry committed (the PUT closing an upload session) */
export function blobUploads(requests: readonly RecordedRequest[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of requests) {
    if (r.method !== 'PUT' || !r.path.includes('/blobs/uploads/') || r.status !== 201) continue;
    const digest = new URL(r.path, 'http://x').searchParams.get('digest');
    if (digest) counts.set(digest, (counts.get(digest) ?? 0) + 1);
  }
  return counts;
}
