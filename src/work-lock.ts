// One run at a time per work directory: a lock file beside it holds the owner's pid, host and
// process start time. A second run refuses naming the holder; a lock whose holder is gone (pid
// not alive, or alive but another process since the start time differs) is stale and taken over.
import { readFileSync } from 'node:fs';
import { link, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { SealiftError } from './errors.ts';
import { tempName } from './fs-atomic.ts';

interface LockOwner {
  pid: number;
  host: string;
  /** the holder's start time (Linux /proc/<pid>/stat field 22), to tell a reused pid apart */
  started: string | null;
  since: string;
  command: string;
}

/** A process's start time in clock ticks since boot (Linux); null where /proc does not say. */
function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces and parentheses: count fields after the last ")"
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readOwner(file: string): Promise<LockOwner | undefined> {
  try {
    const o = JSON.parse(await readFile(file, 'utf8')) as LockOwner;
    return Number.isInteger(o.pid) ? o : undefined;
  } catch {
    return undefined;
  }
}

/** A lock is stale when its holder on this host is gone; a lock from another host is never judged. */
function isStale(o: LockOwner | undefined): boolean {
  if (!o) return true;
  if (o.host !== hostname()) return false;
  if (!alive(o.pid)) return true;
  const started = processStart(o.pid);
  return o.started !== null && started !== null && started !== o.started;
}

export interface WorkLock {
  file: string;
  /** the stale holder this run took over from, if any */
  tookOverFrom?: LockOwner;
  release(): Promise<void>;
}

/**
 * Takes `<target>.lock` for this process, or fails with LOCKED naming the holder. `what` says what
 * is locked in messages ("bundle bundles/airgap").
 */
export async function acquireWorkLock(target: string, what: string): Promise<WorkLock> {
  const file = `${target}.lock`;
  const me: LockOwner = {
    pid: process.pid,
    host: hostname(),
    started: processStart(process.pid),
    since: new Date().toISOString(),
    command: process.argv.slice(1).join(' '),
  };
  const mine = tempName(file);
  await writeFile(mine, `${JSON.stringify(me)}\n`);
  let tookOverFrom: LockOwner | undefined;
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        // link() fails if the lock exists: of two runs exactly one creates it, complete
        await link(mine, file);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const holder = await readOwner(file);
      if (!isStale(holder) || attempt >= 3) {
        const h = holder ?? { pid: '?', host: '?', since: '?', command: '?' };
        throw new SealiftError(
          'LOCKED',
          `${what} is in use by another sealift run (pid ${h.pid} on ${h.host}, since ${h.since}: ${h.command}); nothing was changed`,
          {
            hint: `Wait for that run to finish (or stop it) and run again. If no such run exists, remove ${file}.`,
            details: { lock: file, holder: h },
          },
        );
      }
      // stale: move it aside under a name of our own, so that of two runs taking over only one
      // removes this holder's lock (the other finds it gone, or finds the winner's and waits)
      const aside = `${mine}.stale`;
      try {
        await rename(file, aside);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      const moved = await readOwner(aside);
      if (moved && holder && (moved.pid !== holder.pid || moved.since !== holder.since)) {
        // another run took over between our read and the rename: give its lock back
        await link(aside, file).catch(() => undefined);
        await rm(aside, { force: true });
        continue;
      }
      await rm(aside, { force: true });
      tookOverFrom = holder;
    }
  } finally {
    await rm(mine, { force: true });
  }
  return {
    file,
    ...(tookOverFrom ? { tookOverFrom } : {}),
    release: async () => {
      // only our own lock: after a takeover by another run (we looked dead to it) leave theirs
      const o = await readOwner(file);
      if (o && o.pid === me.pid && o.since === me.since && o.host === me.host) await rm(file, { force: true });
    },
  };
}
