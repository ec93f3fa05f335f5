// How V8 counts Buffer memory, for the commands that stream blobs into a registry (load, mirror).
import { setFlagsFromString } from 'node:v8';

/**
 * Blob chunks are Buffers off V8's heap. By default V8 (before 14.8) runs a full mark-compact each
 * time such memory grows by a fixed step (tens of MB): a GB pushed meant dozens of them, about a
 * second of a load. Counted within the heap's global limit instead (V8 14.8's default, where the
 * flag is gone) they trigger a fraction of those, at the price of dead buffers living longer:
 * measured on bench/bundle.ts the peak RSS grew by 30-55 MiB for no clear gain, so only the copy
 * commands ask for it. Called first in their action, before the stage code is imported.
 *
 * Not a command-line flag or shebang: a Node that does not know it refuses to start ("bad
 * option"). Only on the V8 versions known to have it (13.6, Node 24, measured), so no other
 * version prints "unrecognized flag".
 */
export function countBuffersInHeapLimit(): void {
  const [major = 0, minor = 0] = process.versions.v8.split('.').map(Number);
  const version = major * 100 + minor;
  if (version >= 1306 && version < 1408) setFlagsFromString('--external-memory-accounted-in-global-limit');
}
