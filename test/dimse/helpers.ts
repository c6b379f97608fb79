import { spawn } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import { Client, Dataset, requests as dimseRequests } from 'dcmjs-dimse';
import { type WriteDataset, encodePart10 } from '../../lib/dicom/writer';
import { SopClass, TransferSyntax } from '../../lib/dicom/uids';
import { allFilesUnder } from '../support/tools';

export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command without blocking the event loop: the SCP under test lives in this process, so a
 * synchronous spawn would deadlock it.
 */
export function runProcess(command: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120000): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** dcmtk peers run with TCP_NODELAY=1 (see shared/notes/benchmarking.md), on 127.0.0.1 only. */
const DCMTK_ENV = { TCP_NODELAY: '1' };

export interface AeOptions {
  callingAE?: string;
  calledAE?: string;
}

/** storescu -v -nh: keeps sending after a refused instance; the verbose log has each response. */
export function storescu(port: number, files: string[], ae: AeOptions = {}, extra: string[] = []): Promise<ProcessResult> {
  const args = ['-v', '-nh', '-aet', ae.callingAE ?? 'STORESCU', '-aec', ae.calledAE ?? 'CLARA', ...extra, '127.0.0.1', String(port), ...files];
  return runProcess('storescu', args, DCMTK_ENV);
}

export function echoscu(port: number, ae: AeOptions = {}): Promise<ProcessResult> {
  return runProcess('echoscu', ['-aet', ae.callingAE ?? 'ECHOSCU', '-aec', ae.calledAE ?? 'CLARA', '127.0.0.1', String(port)], DCMTK_ENV);
}

/** The store responses storescu -v reported, in order ("Success", "Error: DataSetDoesNotMatchSOPClass", ...). */
export function storeResponses(result: ProcessResult): string[] {
  return [...(result.stdout + result.stderr).matchAll(/Received Store Response \(([^)]*)\)/g)].map((m) => m[1]);
}

/** Every .dcm file below a folder, sorted. */
export function dicomFilesUnder(dir: string): string[] {
  return allFilesUnder(dir).filter((p) => p.endsWith('.dcm'));
}

/** The next `event` from an emitter that passes `accept`, or a rejection after `timeoutMs`. */
export function nextEvent<T>(emitter: EventEmitter, event: string, timeoutMs = 30000, accept: (value: T) => boolean = () => true): Promise<T> {
  return new Promise((resolve, reject) => {
    const onEvent = (value: T) => {
      if (!accept(value)) return;
      clearTimeout(timer);
      emitter.removeListener(event, onEvent);
      resolve(value);
    };
    const timer = setTimeout(() => {
      emitter.removeListener(event, onEvent);
      reject(new Error(`no '${event}' event within ${timeoutMs} ms`));
    }, timeoutMs);
    emitter.on(event, onEvent);
  });
}

/** Collects every `event` an emitter sends from now on. */
export function collect<T>(emitter: EventEmitter, event: string): T[] {
  const seen: T[] = [];
  emitter.on(event, (v: T) => seen.push(v));
  return seen;
}

/** A tiny but complete MR instance; `overrides` replace or add attributes. */
export function mrInstance(overrides: WriteDataset = {}): WriteDataset {
  return {
    SOPClassUID: SopClass.MrImageStorage,
    SOPInstanceUID: '1.2.826.0.1.3680043.10.1.1',
    StudyInstanceUID: '1.2.826.0.1.3680043.10.1',
    SeriesInstanceUID: '1.2.826.0.1.3680043.10.1.2',
    Modality: 'MR',
    PatientID: 'TEST',
    PatientName: 'Test^Crafted',
    SeriesNumber: 1,
    InstanceNumber: 1,
    Rows: 4,
    Columns: 4,
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    BitsAllocated: 16,
    BitsStored: 12,
    HighBit: 11,
    PixelRepresentation: 0,
    PixelData: { vr: 'OW', value: new Uint8Array(32).map((_, i) => i) },
    ...overrides,
  };
}

export function mrInstanceFile(overrides: WriteDataset = {}): Buffer {
  return encodePart10(mrInstance(overrides));
}

/**
 * Sends one C-STORE whose data set bytes are exactly `datasetBytes` (garbage, truncated, ...), with the
 * given identity in the command, using dcmjs-dimse's Client (dcmtk refuses to send such files). Resolves
 * with the response status, or 'no response'.
 */
export function sendRawDataSet(
  port: number,
  identity: { sopClassUID: string; sopInstanceUID: string },
  datasetBytes: Buffer,
  ae: AeOptions = {},
): Promise<number | 'no response'> {
  return new Promise((resolve, reject) => {
    const dataset = new Dataset({ SOPClassUID: identity.sopClassUID, SOPInstanceUID: identity.sopInstanceUID }, TransferSyntax.ExplicitVRLittleEndian);
    // The request carries our bytes instead of dcmjs's encoding of the two elements above.
    (dataset as unknown as { getDenaturalizedDataset: () => Buffer }).getDenaturalizedDataset = () => datasetBytes;
    const request = new dimseRequests.CStoreRequest(dataset);
    let status: number | 'no response' = 'no response';
    request.on('response', (response: { getStatus(): number }) => {
      status = response.getStatus();
    });
    const client = new Client();
    client.addRequest(request);
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve(status);
    };
    client.on('associationRejected', () => finish(new Error('association rejected')));
    client.on('networkError', (e: Error) => finish(e));
    client.on('closed', () => finish());
    client.send('127.0.0.1', port, ae.callingAE ?? 'RAWSCU', ae.calledAE ?? 'CLARA', { connectTimeout: 10000, associationTimeout: 10000, pduTimeout: 10000 });
  });
}
