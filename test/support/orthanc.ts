import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { hasTool, scratchDir } from './tools';

/**
 * A throw-away Orthanc (Debian's `orthanc` package) for tests that need a real PACS to accept what we
 * write: its own storage and index in a scratch folder, free loopback ports, no authentication, REST
 * answered on loopback only. Orthanc 1.10 has no option to bind its DICOM port to one address, so instead
 * of trusting every caller it accepts C-STORE only from the AE titles below, and only from 127.0.0.1
 * (DicomCheckModalityHost): nothing off this machine can store into it.
 *
 * Sending with dcmtk: `storescu -R -aet <callingAETs[0]> -aec <aet> 127.0.0.1 <dicomPort> files...`; `-R`
 * proposes exactly the files' SOP classes, as storescu's default list leaves out Segmentation Storage.
 */
export interface OrthancInstance {
  dicomPort: number;
  httpPort: number;
  /** Orthanc's called AE title. */
  aet: string;
  /** The calling AE titles it accepts (from 127.0.0.1); `callingAETs[0]` is a good default. */
  callingAETs: string[];
  /** GET on the REST API, parsed as JSON; throws with the status and body on anything but 200. */
  rest<T>(path: string): Promise<T>;
  /** Stops it for good and removes its storage. */
  stop(): Promise<void>;
  /** Stops it (SIGTERM), keeping its ports and storage, as a PACS going down. */
  halt(): Promise<void>;
  /** Starts it again on the same ports and storage. */
  restart(): Promise<void>;
}

export interface OrthancOptions {
  /** Calling AE titles to accept, besides dcmtk's default STORESCU. */
  callingAETs?: string[];
  /** Milliseconds to wait for the REST API to answer after start (default 30000). */
  startTimeoutMs?: number;
}

const DEFAULT_CALLING_AETS = ['STORESCU', 'CLARA', 'CLARA-SCU', 'CLARA-SEG', 'CLARA-RTSTRUCT'];

/** Where Debian puts the server: /usr/sbin, which is not on every user's PATH. */
export function orthancBinary(): string | undefined {
  if (hasTool('Orthanc')) return 'Orthanc';
  return existsSync('/usr/sbin/Orthanc') ? '/usr/sbin/Orthanc' : undefined;
}

export function hasOrthanc(): boolean {
  return orthancBinary() !== undefined;
}

function httpGet(port: number, path: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Starts Orthanc and resolves once its REST API answers; rejects with its log if it does not come up. */
export async function startOrthanc(options: OrthancOptions = {}): Promise<OrthancInstance> {
  const binary = orthancBinary();
  if (!binary) throw new Error('Orthanc is not installed (Debian package "orthanc")');
  const scratch = scratchDir('orthanc');
  const aet = 'ORTHANC-TEST';
  const callingAETs = [...new Set([...(options.callingAETs ?? []), ...DEFAULT_CALLING_AETS])];
  const storage = join(scratch.dir, 'storage');
  mkdirSync(storage, { recursive: true });
  // Two free ports a moment ago; another process may take one in between, so a failed start retries.
  for (let attempt = 1; ; attempt++) {
    const httpPort = await freeLoopbackPort();
    let dicomPort = await freeLoopbackPort();
    while (dicomPort === httpPort) dicomPort = await freeLoopbackPort();
    const config = join(scratch.dir, 'orthanc.json');
    writeFileSync(
      config,
      JSON.stringify(
        {
          Name: 'clara-test',
          StorageDirectory: storage,
          IndexDirectory: storage,
          Plugins: [],
          HttpServerEnabled: true,
          HttpPort: httpPort,
          RemoteAccessAllowed: false,
          AuthenticationEnabled: false,
          SslEnabled: false,
          DicomServerEnabled: true,
          DicomAet: aet,
          DicomPort: dicomPort,
          DicomCheckCalledAet: true,
          DicomAlwaysAllowEcho: false,
          DicomAlwaysAllowStore: false,
          DicomCheckModalityHost: true,
          DicomModalities: Object.fromEntries(callingAETs.map((ae) => [ae.toLowerCase(), [ae, '127.0.0.1', 104]])),
          UnknownSopClassAccepted: false,
          SaveJobs: false,
          ConcurrentJobs: 1,
          StableAge: 1,
        },
        null,
        2,
      ),
    );
    const launched = await launch(binary, config, join(scratch.dir, `orthanc-${attempt}.log`), scratch.dir, httpPort, options.startTimeoutMs ?? 30000);
    let { kill } = launched;
    const { up, child, log } = launched;
    // Orthanc opens its DICOM port before its REST API and exits if either is taken, so up means both.
    if (up && !exited(child)) {
      const rest = async <T>(path: string): Promise<T> => {
        const answer = await httpGet(httpPort, path, 30000);
        if (answer.status !== 200) throw new Error(`Orthanc GET ${path}: HTTP ${answer.status}: ${answer.body.slice(0, 500)}`);
        return JSON.parse(answer.body) as T;
      };
      const stop = async (): Promise<void> => {
        await kill();
        scratch.cleanup();
      };
      let restarts = 0;
      // The same ports, storage and index: a PACS that went down and came back, holding what it had stored.
      const restart = async (): Promise<void> => {
        await kill();
        const again = await launch(binary, config, join(scratch.dir, `orthanc-restart-${++restarts}.log`), scratch.dir, httpPort, options.startTimeoutMs ?? 30000);
        kill = again.kill;
        if (!again.up) throw new Error(`Orthanc did not come back on ports http ${httpPort} dicom ${dicomPort}: ${again.log()}`);
      };
      const halt = () => kill();
      return { dicomPort, httpPort, aet, callingAETs, rest, stop, halt, restart };
    }
    await kill();
    if (attempt >= 3) {
      const text = log();
      scratch.cleanup();
      throw new Error(`Orthanc did not start (attempt ${attempt}, ports http ${httpPort} dicom ${dicomPort}): ${text}`);
    }
    mkdirSync(storage, { recursive: true });
  }
}

/** Starts Orthanc on a written configuration and waits for its REST API; `up` says whether it answered. */
async function launch(binary: string, config: string, logFile: string, cwd: string, httpPort: number, startTimeoutMs: number): Promise<{ child: ChildProcess; up: boolean; kill(): Promise<void>; log(): string }> {
  // Orthanc logs to a file, not a pipe: a test that blocks the event loop (spawnSync of storescu) must
  // not leave Orthanc stuck writing to a full pipe in the middle of an association.
  const logFd = openSync(logFile, 'w');
  const child = spawn(binary, [config], { stdio: ['ignore', logFd, logFd], cwd });
  closeSync(logFd);
  // mocha --exit ends the process without after() hooks finishing: never leave an Orthanc behind.
  const reap = () => !exited(child) && child.kill('SIGKILL');
  process.once('exit', reap);
  child.once('exit', () => process.removeListener('exit', reap));
  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-3000) : '');
  const kill = (): Promise<void> =>
    new Promise((resolve) => {
      if (exited(child)) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
      // Orthanc flushes its index on SIGTERM; a hung one is killed after a while.
      setTimeout(() => !exited(child) && child.kill('SIGKILL'), 10000).unref();
    });
  const deadline = Date.now() + startTimeoutMs;
  let up = false;
  while (!exited(child) && Date.now() < deadline) {
    try {
      up = (await httpGet(httpPort, '/system', 2000)).status === 200;
      if (up) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, up: up && !exited(child), kill, log };
}
