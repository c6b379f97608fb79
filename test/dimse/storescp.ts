import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { readDicomHeader } from '../../lib/dicom/reader';
import { Tag } from '../../lib/dicom/tags';
import { generateUid } from '../../lib/dicom/uids';
import { allFilesUnder, delay } from '../support/tools';
import { mrInstanceFile } from './helpers';

/** A dcmtk storescp on 127.0.0.1 (TCP_NODELAY=1, see shared/notes/benchmarking.md), verbose, so receptions can be counted. */
export interface StorescpPeer {
  port: number;
  aet: string;
  dir: string;
  /** Store requests received so far (every reception, a repeat included). */
  receptions(): number;
  log(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function startStorescp(port: number, dir: string, options: { aet?: string; extra?: string[] } = {}): Promise<StorescpPeer> {
  mkdirSync(dir, { recursive: true });
  const aet = options.aet ?? 'PACS';
  const args = ['-v', '-aet', aet, '-od', dir, ...(options.extra ?? []), String(port)];
  const child: ChildProcess = spawn('storescp', args, { env: { ...process.env, TCP_NODELAY: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  let count = 0;
  const onData = (d: Buffer) => {
    const text = d.toString();
    log += text;
    count += (text.match(/Received Store Request/g) ?? []).length;
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`storescp exited ${child.exitCode}: ${log}`);
    if (await portAnswers(port)) break;
    await delay(25);
  }
  return {
    port, aet, dir,
    receptions: () => count,
    log: () => log,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/** SOP Instance UIDs of the files a storescp wrote. */
export function receivedUids(dir: string): string[] {
  return allFilesUnder(dir).map((f) => readDicomHeader(f).dataset.string(Tag.SOPInstanceUID) as string);
}

/** `count` small MR instances of one series, written to `dir`; returns their paths and UIDs. */
export function writeMrSeries(dir: string, count: number, overrides: Record<string, string | number> = {}): { files: string[]; uids: string[] } {
  mkdirSync(dir, { recursive: true });
  const study = generateUid();
  const series = generateUid();
  const files: string[] = [];
  const uids: string[] = [];
  for (let i = 0; i < count; i++) {
    const uid = generateUid();
    const path = join(dir, `${uid}.dcm`);
    writeFileSync(path, mrInstanceFile({ SOPInstanceUID: uid, StudyInstanceUID: study, SeriesInstanceUID: series, InstanceNumber: i + 1, ...overrides }));
    files.push(path);
    uids.push(uid);
  }
  return { files, uids };
}
