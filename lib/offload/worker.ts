/** A stage thread (see index.ts): runs the one lib function it is asked for, loaded on first use. */
import { join } from 'node:path';
import { OFFLOADED, type OffloadRequest } from './index';
import { serveRequests } from './request-worker';

serveRequests<OffloadRequest, unknown>(async ({ name, args }) => {
  const module = OFFLOADED[name];
  if (!module) throw new Error(`${String(name)} is not a function stage threads run`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const exported = (require(join(__dirname, '..', module)) as Record<string, (...args: unknown[]) => unknown>)[name];
  return { value: args ? await exported(...args) : null };
});
