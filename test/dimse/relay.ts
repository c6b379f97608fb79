import { type Server, type Socket, connect, createServer } from 'node:net';

/**
 * A loopback TCP relay in front of a real peer (Orthanc), that a test can cut and restore on the same
 * port: "the PACS is down" for the sender, while the peer keeps what it already stored, so the test can
 * count afterwards what arrived and how often.
 */
export interface Relay {
  port: number;
  /** Stops listening and drops every connection in flight (the sender sees a reset). */
  cut(): Promise<void>;
  /** Listens again on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startRelay(targetPort: number): Promise<Relay> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer({ noDelay: true }, (client) => {
        const upstream = connect({ host: '127.0.0.1', port: targetPort, noDelay: true });
        sockets.add(client);
        sockets.add(upstream);
        const drop = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        client.on('error', drop);
        upstream.on('error', drop);
        client.on('close', drop);
        upstream.on('close', drop);
        client.pipe(upstream);
        upstream.pipe(client);
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as { port: number }).port;
        server = s;
        resolve();
      });
    });
  const cut = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.resetAndDestroy();
      sockets.clear();
      if (!server) return resolve();
      server.close(() => resolve());
      server = undefined;
    });
  await listen();
  return { get port() { return port; }, cut, restore: listen, close: cut };
}
