// Ctrl-C and SIGTERM: the run is aborted through its AbortSignal, so that it unwinds (open
// upload sessions are cancelled with DELETE, nothing half-written is kept), and the command
// ends with INTERRUPTED (exit 130). A second signal ends the process at once.
import { SealiftError } from '../errors.ts';

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/** Runs `fn` with a signal that aborts on SIGINT/SIGTERM; an aborted run throws INTERRUPTED. */
export async function interruptible<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const onSignal = (name: NodeJS.Signals) => {
    if (ac.signal.aborted) process.exit(130);
    ac.abort(
      new SealiftError('INTERRUPTED', `interrupted (${name}); run the same command again to continue`, {
        hint: 'What was complete is kept (committed blobs, verified files); open uploads were cancelled.',
      }),
    );
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  try {
    return await fn(ac.signal);
  } catch (e) {
    throw ac.signal.aborted ? ac.signal.reason : e;
  } finally {
    for (const s of SIGNALS) process.off(s, onSignal);
  }
}
