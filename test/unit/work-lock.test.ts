// The work-dir lock (src/work-lock.ts): one holder at a time, the refusal names the holder, a lock
// whose holder is gone (dead pid, or a pid now used by another process) is taken over, and a
// release never removes a lock another run holds.
import { readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { acquireWorkLock } from '../../src/work-lock.ts';
import { tempDir } from '../support/process.ts';

const owner = (pid: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ pid, host: hostname(), started: null, since: '2026-01-01T00:00:00.000Z', command: 'x', ...extra });

describe('acquireWorkLock', () => {
  it('refuses a second holder naming the first, and frees the lock on release', async () => {
    await using tmp = await tempDir();
    const target = join(tmp.path, 'airgap');
    const first = await acquireWorkLock(target, 'bundle airgap');
    const err = await acquireWorkLock(target, 'bundle airgap').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'LOCKED' });
    expect(String((err as Error).message)).toContain(
      `bundle airgap is in use by another sealift run (pid ${process.pid} on ${hostname()}`,
    );
    await first.release();
    const again = await acquireWorkLock(target, 'bundle airgap');
    expect(again.tookOverFrom).toBeUndefined();
    await again.release();
  });

  it('takes over a lock whose pid is dead, or alive but started at another time', async () => {
    await using tmp = await tempDir();
    const target = join(tmp.path, 'airgap');
    const gone = await execa(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    await writeFile(`${target}.lock`, owner(Number(gone.stdout)));
    const a = await acquireWorkLock(target, 'bundle airgap');
    expect(a.tookOverFrom?.pid).toBe(Number(gone.stdout));
    await a.release();
    // our own pid, but a start time that is not ours: the pid was reused
    await writeFile(`${target}.lock`, owner(process.pid, { started: '1' }));
    const b = await acquireWorkLock(target, 'bundle airgap');
    expect(b.tookOverFrom?.pid).toBe(process.pid);
    await b.release();
  });

  it('never judges a lock from another host stale, and a release leaves a lock it does not own', async () => {
    await using tmp = await tempDir();
    const target = join(tmp.path, 'airgap');
    await writeFile(`${target}.lock`, owner(1 << 22, { host: 'another-host' }));
    await expect(acquireWorkLock(target, 'bundle airgap')).rejects.toMatchObject({ code: 'LOCKED' });
    await writeFile(`${target}.lock`, owner(process.pid));
    const held = await acquireWorkLock(join(tmp.path, 'other'), 'x');
    await held.release();
    const mine = await acquireWorkLock(join(tmp.path, 'third'), 'x');
    // someone else's lock now stands at that name: releasing must not remove it
    await writeFile(mine.file, owner(process.pid, { since: '2020-01-01T00:00:00.000Z' }));
    await mine.release();
    expect(await readFile(mine.file, 'utf8')).toContain('2020-01-01');
  });
});
