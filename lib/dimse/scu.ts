import { Client, requests as dimseRequests } from 'dcmjs-dimse';

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
 * Sends files over one association with C-STORE. This is the plain sender the demo and tests use;
 * durable delivery with retries is clara-scu-out's job.
 */
export function sendFiles(files: string[], target: SendTarget): Promise<SendResult> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    const statuses = new Map<string, number>();
    for (const file of files) {
      const request = new dimseRequests.CStoreRequest(file);
      request.on('response', (response: { getStatus(): number }) => statuses.set(file, response.getStatus()));
      client.addRequest(request);
    }
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      if (err) return reject(err);
      const failed: SendResult['failed'] = [];
      for (const file of files) {
        const status = statuses.get(file);
        if (status !== 0) failed.push({ file, status: status ?? 'no response' });
      }
      resolve({ sent: files.length - failed.length, failed });
    };
    client.on('associationRejected', (result: { reason?: number }) => finish(new Error(`association rejected by ${target.calledAE}@${target.host}:${target.port} (reason ${result?.reason ?? '?'})`)));
    client.on('networkError', (e: Error) => finish(new Error(`network error talking to ${target.host}:${target.port}: ${e.message}`)));
    client.on('closed', () => finish());
    const timeout = target.timeoutMs ?? 30000;
    client.send(target.host, target.port, target.callingAE, target.calledAE, { connectTimeout: timeout, associationTimeout: timeout, pduTimeout: timeout });
  });
}
