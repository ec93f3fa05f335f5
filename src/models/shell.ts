// The static shell model images carry: BUSYBOX_BIN, else busybox in .tools/bin or on PATH
// (Debian's busybox-static installs a static /bin/busybox; its dynamic sibling, package busybox,
// does too, and buildModelImage refuses that one by its ELF header).
import { SealiftError } from '../errors.ts';
import { findTool } from '../tools.ts';

export function findModelShell(): string {
  const found = findTool('busybox');
  if (!found) {
    throw new SealiftError('TOOL_MISSING', 'no busybox for the model images (BUSYBOX_BIN, .tools/bin or PATH)', {
      hint: "Install Debian's busybox-static (apt-get install busybox-static: a static /bin/busybox), or set BUSYBOX_BIN to a static busybox.",
    });
  }
  return found;
}
