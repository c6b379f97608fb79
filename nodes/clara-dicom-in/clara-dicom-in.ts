import { readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { TlsOptions } from 'node:tls';
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeMessageInFlow, NodeStatus } from 'node-red';
import { type AllowEntry, PolicyConfigError, parseAllowList, validateAeTitle } from '../../lib/dimse/policy';
import type { StoreScp } from '../../lib/dimse/scp';
import { type CompletedJob, GROUPINGS, type Grouping, type ReplacedFile, type SkippedFile, ingestFolder } from '../../lib/ingest';
import { JobStore, resolveWorkRoot } from '../../lib/job';
import { type RetentionPolicy, applyRetention, checkRetentionPolicy, retentionEnabled } from '../../lib/job/retention';
import { patientForLog, patientOfFile, revealPatientIdentity } from '../../lib/dicom/phi';
import { errorStatus, statusAtDeploy, statusLine } from '../status-text';

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
  /** A tls-config node: DICOM TLS on this port. */
  tls?: string;
  /** With TLS: 'require' (default) a client certificate the tls-config's CA signed, or 'none'. */
  tlsClientAuth?: string;
  /** Job retention: hours a finished job is kept, and a disk quota for the work root; empty: no limit. */
  retentionHours?: string | number;
  retentionQuotaMb?: string | number;
}

interface TlsConfigNode extends Node {
  addTLSOptions(options: TlsOptions): void;
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
  retention: RetentionPolicy;
}

/** How often retention runs besides after each job. */
const RETENTION_INTERVAL_MS = 10 * 60 * 1000;

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
    workRoot: resolveWorkRoot(config.workRoot, userDir),
    maxPduLength: numberSetting(config.maxPdu, 65536, 'max PDU', 4096, 16 * 1024 * 1024),
    retention: checkRetentionPolicy({
      maxAgeHours: optionalNumber(config.retentionHours, 'retention (hours)'),
      maxTotalMb: optionalNumber(config.retentionQuotaMb, 'retention quota (MB)'),
    }),
  };
}

function optionalNumber(raw: string | number | undefined, name: string): number | undefined {
  if (raw === undefined || String(raw).trim() === '') return undefined;
  return numberSetting(raw, 0, name, 0, Number.MAX_SAFE_INTEGER, false);
}

/** The SCP's TLS options from a tls-config node: its key, certificate and CA; client certificates as chosen. */
function scpTlsOptions(tlsNode: TlsConfigNode | null, clientAuth: string | undefined): TlsOptions {
  if (!tlsNode) throw new PolicyConfigError('the chosen TLS configuration does not exist');
  const options: TlsOptions = {};
  tlsNode.addTLSOptions(options);
  if (!options.key || !options.cert) throw new PolicyConfigError('DICOM TLS needs a certificate and a private key in the TLS configuration');
  const requireClientCert = (clientAuth || 'require') === 'require';
  if (requireClientCert && !options.ca) throw new PolicyConfigError('client certificates are required, but the TLS configuration has no CA certificate to check them with');
  // tls-config's "verify server certificate" is about the far end when we connect; here we are the
  // server, and the far end is checked by this node's own setting.
  return { ...options, requestCert: requireClientCert, rejectUnauthorized: requireClientCert };
}

function shortUid(uid: string): string {
  return uid.length > 18 ? `…${uid.slice(-14)}` : uid;
}

/** dcmjs-dimse takes about 0.3 s to load: the SCP is loaded when the first clara-dicom-in deploys, not when Node-RED starts. */
function loadStoreScp(): typeof StoreScp {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('../../lib/dimse/scp') as typeof import('../../lib/dimse/scp')).StoreScp;
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
      scp = new (loadStoreScp())({
        workRoot: settings.workRoot,
        aeTitle: settings.aeTitle,
        port: settings.port,
        host: settings.host,
        allow: settings.allow,
        acceptAnyCalledAE: settings.acceptAnyCalledAE,
        grouping: settings.grouping,
        studyTimeoutSeconds: settings.studyTimeoutSeconds,
        maxPduLength: settings.maxPduLength,
        tls: config.tls ? scpTlsOptions(RED.nodes.getNode(config.tls) as TlsConfigNode | null, config.tlsClientAuth) : undefined,
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
      statusAtDeploy(RED, node, errorStatus((err as Error).message));
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
      if (startError) return errorStatus(startError);
      const receiving = scp.receivingJobs;
      if (receiving.length > 0) {
        const count = receiving.reduce((n, j) => n + j.instances, 0);
        const text = receiving.length === 1
          ? RED._('clara-dicom-in.status.receivingStudy', { count, study: shortUid(receiving[0].job.studyInstanceUID) })
          : RED._('clara-dicom-in.status.receivingStudies', { count, studies: receiving.length });
        return { fill: 'blue', shape: 'dot', text: lastError ? RED._('clara-dicom-in.status.withRefused', { status: text, count: scp.stats.rejected }) : text };
      }
      if (ingesting > 0) return { fill: 'blue', shape: 'ring', text: RED._('clara-dicom-in.status.ingesting', { count: ingesting }) };
      if (listeningPort === undefined) return { fill: 'grey', shape: 'ring', text: RED._('clara-dicom-in.status.starting') };
      if (lastError) return { fill: 'red', shape: 'ring', text: RED._('clara-dicom-in.status.problem', { error: statusLine(lastError, 50), port: listeningPort }) };
      return { fill: 'green', shape: 'dot', text: RED._('clara-dicom-in.status.listening', { port: listeningPort, jobs: jobsSent, instances: scp.stats.stored }) };
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

    // ---- each job in the log (patient identity masked unless settings.js says otherwise), retention ----
    const revealPatient = revealPatientIdentity(RED.settings);
    const logJob = (job: CompletedJob) => {
      let first: string | undefined;
      try {
        first = readdirSync(join(job.job.dir, 'dicom')).find((name) => name.endsWith('.dcm'));
      } catch {
        // no instance folder: nothing to name the patient by
      }
      const who = first ? patientForLog(patientOfFile(join(job.job.dir, 'dicom', first)), revealPatient) : 'patient unknown';
      const from = job.summary.source === 'folder' ? job.summary.folder : `${job.summary.callingAE ?? '?'}@${job.summary.remoteAddress ?? '?'}`;
      node.log(`job ${job.job.id}: study ${job.summary.studyInstanceUID}, ${who}, ${job.summary.instances} instance(s) in ${job.summary.series.length} series from ${from}`);
    };
    let retentionRun: Promise<void> | undefined;
    let retentionAgain = false;
    let retentionTimer: NodeJS.Timeout | undefined;
    let closed = false;
    const runRetention = () => {
      if (closed || !retentionEnabled(settings.retention)) return;
      if (retentionRun) {
        retentionAgain = true;
        return;
      }
      retentionRun = applyRetention(settings.workRoot, settings.retention)
        .then((report) => {
          const mb = (bytes: number) => (bytes / 1048576).toFixed(1);
          if (report.removed.length > 0) {
            const byAge = report.removed.filter((r) => r.reason === 'age').length;
            node.log(`retention: removed ${report.removed.length} finished job(s) (${byAge} by age, ${report.removed.length - byAge} by quota), freed ${mb(report.freedBytes)} MB${report.totalBytes !== undefined ? `; jobs now take ${mb(report.totalBytes)} MB` : ''}`);
          }
          for (const failure of report.errors) node.warn(`clara-dicom-in: retention cannot remove job ${failure.id}: ${failure.message}`);
        }, (err: Error) => node.warn(`clara-dicom-in: retention: ${err.message}`))
        .finally(() => {
          retentionRun = undefined;
          if (retentionAgain) {
            retentionAgain = false;
            runRetention();
          }
        });
    };
    if (retentionEnabled(settings.retention)) {
      retentionTimer = setInterval(runRetention, RETENTION_INTERVAL_MS);
      retentionTimer.unref();
      runRetention();
    }

    scp.on('job', (job) => {
      jobsSent++;
      lastError = undefined;
      logJob(job);
      node.send(jobMessage(job));
      scheduleStatus();
      runRetention();
    });
    scp.on('instance', scheduleStatus);
    scp.on('rejected', (r) => {
      lastError = RED._('clara-dicom-in.status.refusedInstance', { uid: shortUid(r.sopInstanceUID), reason: r.reason });
      scheduleStatus();
    });
    scp.on('association', (a) => {
      if (a.event === 'rejected') {
        lastError = a.callingAE
          ? RED._('clara-dicom-in.status.rejectedAssociation', { ae: a.callingAE, address: a.remoteAddress })
          : RED._('clara-dicom-in.status.refusedConnection', { address: a.remoteAddress, reason: a.reason ?? '' });
      }
      scheduleStatus();
    });
    scp.on('error', (err) => {
      lastError = err.message;
      node.error(`clara-dicom-in: ${err.message}`);
      scheduleStatus();
    });

    statusAtDeploy(RED, node, { fill: 'grey', shape: 'ring', text: RED._('clara-dicom-in.status.starting') });
    const started = scp.listen().then(
      ({ port }) => {
        listeningPort = port;
        node.log(`listening as ${settings.aeTitle} on ${settings.host}:${port}, jobs in ${settings.workRoot}`);
        showStatus();
      },
      (err: Error) => {
        startError = err.message;
        node.error(`clara-dicom-in: ${err.message}`);
        showStatus();
      },
    );

    // ---- input: msg.payload is a folder to ingest ----
    node.on('input', (msg: NodeMessageInFlow, send, done) => {
      const folder = msg.payload;
      if (typeof folder !== 'string' || folder.trim() === '') {
        lastError = 'msg.payload must be the path of a folder of DICOM files';
        scheduleStatus();
        done(new Error(`clara-dicom-in: ${lastError}`));
        return;
      }
      ingesting++;
      scheduleStatus();
      ingestFolder(folder.trim(), store, { grouping: settings.grouping, calledAE: settings.aeTitle, removeSource: msg.removeSource === true })
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
            logJob(job);
            send(out);
          });
          runRetention();
          lastError = undefined;
          done();
        })
        .catch((err: Error) => {
          // Shown until the next job arrives; the catch node and the log get the whole message.
          lastError = err.message.replace(/^clara-dicom-in: /, '');
          done(err);
        })
        .finally(() => {
          ingesting--;
          scheduleStatus();
        });
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      if (statusTimer) clearTimeout(statusTimer);
      statusTimer = undefined;
      closed = true;
      if (retentionTimer) clearInterval(retentionTimer);
      // Jobs still receiving stay "receiving" on disk; the next clara-dicom-in with this work root and AE
      // title resumes them (a redeploy therefore loses nothing).
      started
        .then(() => scp.close())
        .then(() => retentionRun)
        .catch((err: Error) => node.error(`clara-dicom-in: close failed: ${err.message}`))
        .finally(() => {
          node.status({});
          done();
        });
    });
  }

  RED.nodes.registerType('clara-dicom-in', ClaraDicomInNode);
};
