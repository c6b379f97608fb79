import { createServer } from 'node:net';

/**
 * A loopback port that was free a moment ago, for a listener that must be given a fixed port number
 * (a flow's clara-dicom-in, a dcmtk peer). Another process may take it in between; callers that can
 * listen on port 0 should do that instead.
 */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
