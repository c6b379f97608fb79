import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Every regular file below `dir`, in name order at each level (so runs list them the same way every time). */
export function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : e.isFile() ? [join(dir, e.name)] : []));
}
