import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeMessageInFlow, NodeStatus } from 'node-red';
import { type AllowEntry, PolicyConfigError, StoreScp, parseAllowList, validateAeTitle } from '../../lib/dimse';
import { type CompletedJob, GROUPINGS, type Grouping, type ReplacedFile, type SkippedFile, ingestFolder } from '../../lib/ingest';
import { JobStore, defaultWorkRoot } from '../../lib/job';

/** The editor's settings, as Node-RED stores them (numbers may arrive as strings). */
interface ClaraDicomInDef extends NodeDef {
  aeTitle?: string;
  port?: string | number;
  host?: string;
  allow?: string;
  acceptAnyCalledAE?: boolean;
  studyTimeout?: string | number;
  grouping?: string;
  workRoot?: string;
  maxPdu?: string | number;
}

/** What one completed study becomes; see docs/messages.md. */
interface JobMessage extends NodeMessage {
  payload: CompletedJob['summary'];
  job: CompletedJob['job'];
  topic: string;
  skipped?: SkippedFile[];
  skippedCount?: number;
  replaced?: ReplacedFile[];
  replacedCount?: number;
}

interface Settings {
  aeTitle: string;
  port: number;
  host: string;
  allow: AllowEntry[];
  acceptAnyCalledAE: boolean;
  studyTimeoutSeconds: number;
  grouping: Grouping;
  workRoot: string;
  maxPduLength: number;
}

/** Skipped files listed in a folder-ingest msg, at most; the count says how many there were. */
const MAX_SKIPPED_IN_MSG = 100;
const STATUS_INTERVAL_MS = 250;

function numberSetting(raw: string | number | undefined, fallback: number, name: string, min: number, max: number, integer = true): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new PolicyConfigError(`${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, not ${JSON.stringify(raw)}`);
  }
  return n;
}

function settingsOf(config: ClaraDicomInDef, userDir: string): Settings {
  const grouping = (config.grouping || 'study') as Grouping;
  if (!GROUPINGS.includes(grouping)) throw new PolicyConfigError(`grouping must be one of ${GROUPINGS.join(', ')}, not ${JSON.stringify(config.grouping)}`);
  return {
    aeTitle: validateAeTitle(config.aeTitle || 'CLARA'),
    port: numberSetting(config.port, 11112, 'port', 0, 65535),
    host: (config.host || '0.0.0.0').trim(),
    allow: parseAllowList(config.allow ?? ''),
    acceptAnyCalledAE: config.acceptAnyCalledAE === true,
    studyTimeoutSeconds: numberSetting(config.studyTimeout, 5, 'study timeout', 0.1, 86400, false),
    grouping,
    // A relative work root (as an imported flow carries) lives in the user directory, like flows.json.
    workRoot: (config.workRoot ?? '').trim() ? resolve(userDir, (config.workRoot ?? '').trim()) : defaultWorkRoot(userDir),
    maxPduLength: numberSetting(config.maxPdu, 65536, 'max PDU', 4096, 16 * 1024 * 1024),
  };
}

function shortUid(uid: string): string {
  return uid.length > 18 ? `…${uid.slice(-14)}` : uid;
}

function jobMessage(job: CompletedJob): JobMessage {
  return { topic: job.summary.studyInstanceUID, payload: job.summary, job: job.job };
}

export = function register(RED: NodeAPI): void {
  function ClaraDicomInNode(this: Node, config: ClaraDicomInDef): void {
    RED.nodes.createNode(this, config);
    const node = this;
    const userDir = RED.settings.userDir || join(homedir(), '.node-red');

    let settings: Settings;
    let store: JobStore;
    let scp: StoreScp;
    try {
      settings = settingsOf(config, userDir);
      store = new JobStore(settings.workRoot);
      scp = new StoreScp({
        workRoot: settings.workRoot,
        aeTitle: settings.aeTitle,
        port: settings.port,
        host: settings.host,
        allow: settings.allow,
        acceptAnyCalledAE: settings.acceptAnyCalledAE,
        grouping: settings.grouping,
        studyTimeoutSeconds: settings.studyTimeoutSeconds,
        maxPduLength: settings.maxPduLength,
        log: (level, message) => {
          if (level === 'info') node.debug(message);
          else if (level === 'warn') node.warn(message);
          else node.error(message);
        },
      });
    } catch (err) {
      // A bad setting or an unusable work root (permissions, read-only disk): say so, stay deployed.
      const message = `clara-dicom-in: ${(err as Error).message}`;
      node.error(message);
      node.status({ fill: 'red', shape: 'ring', text: (err as Error).message.slice(0, 60) });
      node.on('input', (_msg: NodeMessageInFlow, _send, done) => done(new Error(message)));
      return;
    }

    // ---- status: what the node is doing, at most a few updates a second ----
    let listeningPort: number | undefined;
    let startError: string | undefined;
    let lastError: string | undefined;
    let jobsSent = 0;
    let ingesting = 0;
    let statusTimer: NodeJS.Timeout | undefined;
    let lastStatusText = '';
    const computeStatus = (): NodeStatus => {
      if (startError) return { fill: 'red', shape: 'ring', text: startError };
      const receiving = scp.receivingJobs;
      if (receiving.length > 0) {
        const count = receiving.reduce((n, j) => n + j.instances, 0);
        const study = receiving.length === 1 ? ` (study ${shortUid(receiving[0].job.studyInstanceUID)})` : ` (${receiving.length} studies)`;
        return { fill: 'blue', shape: 'dot', text: `receiving ${count}${study}${lastError ? ` · ${scp.stats.rejected} refused` : ''}` };
      }
      if (ingesting > 0) return { fill: 'blue', shape: 'ring', text: `ingesting ${ingesting} folder(s)` };
      if (listeningPort === undefined) return { fill: 'grey', shape: 'ring', text: 'starting' };
      const counts = `${jobsSent} job(s), ${scp.stats.stored} instance(s)`;
      if (lastError) return { fill: 'red', shape: 'ring', text: `${lastError.slice(0, 50)} · :${listeningPort}` };
      return { fill: 'green', shape: 'dot', text: `listening :${listeningPort} · ${counts}` };
    };
    const showStatus = () => {
      statusTimer = undefined;
      const status = computeStatus();
      const key = `${status.fill}|${status.shape}|${status.text}`;
      if (key === lastStatusText) return;
      lastStatusText = key;
      node.status(status);
    };
    const scheduleStatus = () => {
      if (!statusTimer) statusTimer = setTimeout(showStatus, STATUS_INTERVAL_MS);
    };

    scp.on('job', (job) => {
      jobsSent++;
      lastError = undefined;
      node.send(jobMessage(job));
      scheduleStatus();
    });
    scp.on('instance', scheduleStatus);
    scp.on('rejected', (r) => {
      lastError = `refused ${shortUid(r.sopInstanceUID)}: ${r.reason}`;
      scheduleStatus();
    });
    scp.on('association', (a) => {
      if (a.event === 'rejected') lastError = `rejected ${a.callingAE}@${a.remoteAddress}`;
      scheduleStatus();
    });
    scp.on('error', (err) => {
      lastError = err.message;
      node.error(`clara-dicom-in: ${err.message}`);
      scheduleStatus();
    });

    node.status({ fill: 'grey', shape: 'ring', text: 'starting' });
    const started = scp.listen().then(
      ({ port }) => {
        listeningPort = port;
        node.log(`listening as ${settings.aeTitle} on ${settings.host}:${port}, jobs in ${settings.workRoot}`);
        showStatus();
      },
      (err: Error) => {
        startError = err.message.slice(0, 60);
        node.error(`clara-dicom-in: ${err.message}`);
        showStatus();
      },
    );

    // ---- input: msg.payload is a folder to ingest ----
    node.on('input', (msg: NodeMessageInFlow, send, done) => {
      const folder = msg.payload;
      if (typeof folder !== 'string' || folder.trim() === '') {
        done(new Error('clara-dicom-in: msg.payload must be the path of a folder of DICOM files'));
        return;
      }
      ingesting++;
      scheduleStatus();
      ingestFolder(folder.trim(), store, { grouping: settings.grouping, calledAE: settings.aeTitle })
        .then((result) => {
          if (result.skipped.length > 0) {
            const first = result.skipped.slice(0, 3).map((s) => `${s.path}: ${s.reason}`).join('; ');
            node.warn(`clara-dicom-in: ${result.skipped.length} of ${result.files} file(s) in ${result.folder} skipped (${first}${result.skipped.length > 3 ? '; …' : ''})`);
          }
          if (result.replaced.length > 0) {
            const first = result.replaced[0];
            node.warn(`clara-dicom-in: ${result.replaced.length} file(s) in ${result.folder} repeat a SOP instance already copied; the later file was kept (first: ${first.path} replaced by ${first.by})`);
          }
          if (result.jobs.length === 0) {
            throw new Error(`clara-dicom-in: no DICOM instances in ${result.folder} (${result.files} file(s), ${result.skipped.length} skipped)`);
          }
          const skipped = result.skipped.slice(0, MAX_SKIPPED_IN_MSG);
          result.jobs.forEach((job, i) => {
            // The incoming msg is carried on (Node-RED convention); each further study gets a copy.
            const out = (i === 0 ? msg : RED.util.cloneMessage(msg)) as NodeMessageInFlow & Partial<JobMessage>;
            Object.assign(out, jobMessage(job));
            if (result.skipped.length > 0) {
              out.skipped = skipped;
              out.skippedCount = result.skipped.length;
            } else {
              delete out.skipped;
              delete out.skippedCount;
            }
            if (result.replaced.length > 0) {
              out.replaced = result.replaced.slice(0, MAX_SKIPPED_IN_MSG);
              out.replacedCount = result.replaced.length;
            } else {
              delete out.replaced;
              delete out.replacedCount;
            }
            jobsSent++;
            send(out);
          });
          done();
        })
        .catch((err: Error) => done(err))
        .finally(() => {
          ingesting--;
          scheduleStatus();
        });
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      if (statusTimer) clearTimeout(statusTimer);
      statusTimer = undefined;
      // Jobs still receiving stay "receiving" on disk; the next clara-dicom-in with this work root and AE
      // title resumes them (a redeploy therefore loses nothing).
      started
        .then(() => scp.close())
        .catch((err: Error) => node.error(`clara-dicom-in: close failed: ${err.message}`))
        .finally(() => {
          node.status({});
          done();
        });
    });
  }

  RED.nodes.registerType('clara-dicom-in', ClaraDicomInNode);
};
