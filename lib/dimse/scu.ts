import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Outbox, type OutboxTask } from './outbox';

export interface SendTarget {
  host: string;
  port: number;
  calledAE: string;
  callingAE: string;
  /** Milliseconds allowed to connect and to wait for each PDU. */
  timeoutMs?: number;
}

export interface SendResult {
  sent: number;
  failed: Array<{ file: string; status: number | 'no response' }>;
}

/**
 * Sends files with C-STORE, one attempt, as they are on disk (the outbox's own SCU: no parse of the pixel
 * data, no re-encoding). This is the plain sender the demo, `clara-dicom run` and tests use; durable
 * delivery with retries is clara-scu-out's job. Rejects when no instance could be sent at all (the peer is
 * down or refused the association); otherwise resolves with each instance's status.
 */
export async function sendFiles(files: string[], target: SendTarget): Promise<SendResult> {
  // The outbox keeps its task beside a job; a send of loose files gets a folder for the length of the call.
  const home = mkdtempSync(join(tmpdir(), 'clara-send-'));
  const timeout = target.timeoutMs ?? 30000;
  const outbox = new Outbox({ maxAttempts: 1, concurrency: 1 });
  try {
    const queued = outbox.enqueue({
      jobDir: home,
      files,
      destination: { name: target.calledAE, calledAE: target.calledAE, host: target.host, port: target.port, callingAE: target.callingAE, connectTimeoutMs: Math.min(timeout, 10000), pduTimeoutMs: timeout },
    });
    const task = await new Promise<OutboxTask>((done) => {
      outbox.on('settled', (t) => {
        if (t.id === queued.id) done(t);
      });
    });
    await outbox.close();
    const failed = task.instances.filter((i) => i.state !== 'succeeded').map((i) => ({ file: i.file, status: i.status ?? ('no response' as const) }));
    if (failed.length === task.instances.length && task.lastError && task.instances.every((i) => i.status === undefined)) throw new Error(task.lastError);
    return { sent: task.instances.length - failed.length, failed };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}
