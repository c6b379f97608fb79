import { existsSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve as resolvePath } from 'node:path';
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { type OutboxTask, Outbox, type ResolvedDestination, jobOutputFiles } from '../../lib/dimse/outbox';
import { type JobRef, jobFilePath, recordJobError, resolveWorkRoot, updateJob } from '../../lib/job';
import type { ClaraDicomDestinationNode } from '../clara-dicom-destination/destination-node';
import { errorStatus, statusAtDeploy, statusLine } from '../status-text';

/** The editor's settings, as Node-RED stores them. */
type ClaraScuOutDef = NodeDef & {
  destination?: string;
  destinations?: string;
  folders?: string;
  workRoot?: string;
  maxAttempts?: number | string;
  backoff?: number | string;
  maxBackoff?: number | string;
  concurrency?: number | string;
};

const TYPE = 'clara-scu-out';
const DESTINATION_TYPE = 'clara-dicom-destination';
const STAGE = 'send';
const STATUS_INTERVAL_MS = 250;

/** What msg.scu says on output 1: the tasks queued for this msg. */
interface QueuedSummary {
  tasks: Array<{ id: string; destination: string; instances: number; file: string; state: string }>;
}

/** Output 2's payload: one task's outcome. */
interface TaskOutcome {
  taskId: string;
  state: 'succeeded' | 'failed';
  destination: { name: string; calledAE: string; host: string; port: number };
  delivered: number;
  failed: number;
  attempts: number;
  error?: string;
  taskFile: string;
  instances: Array<{ file: string; sopInstanceUID?: string; state: string; status?: number; statusText?: string; error?: string }>;
}

function number(value: unknown, fallback: number, min: number, max: number, what: string): number {
  if (value === undefined || value === null || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`${what} must be from ${min} to ${max}, not ${JSON.stringify(value)}`);
  return n;
}

/** Destination names from text ("A, B" or a JSON array, as Clara's --data ["A","B"]) or an array. */
function namesOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.map((v) => String(v).trim()).filter(Boolean);
  if (typeof value !== 'string' || !value.trim()) return [];
  const text = value.trim();
  if (text.startsWith('[')) {
    try {
      return namesOf(JSON.parse(text) as unknown);
    } catch {
      // not JSON after all: fall through to the list form
    }
  }
  return text.split(/[\s,]+/).map((s) => s.replace(/^["']|["']$/g, '')).filter(Boolean);
}

function filesOfList(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  return list.map((f) => (typeof f === 'string' ? f : f && typeof (f as { file?: unknown }).file === 'string' ? (f as { file: string }).file : '')).filter(Boolean);
}

function expand(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    let isDir = false;
    try {
      isDir = statSync(p).isDirectory();
    } catch {
      // a missing file becomes a failed instance of the task, with the reason
    }
    if (isDir) out.push(...jobOutputFiles(p, ['.'], true));
    else out.push(p);
  }
  return out;
}

function jobOf(msg: NodeMessageInFlow): JobRef | undefined {
  const job = (msg as { job?: unknown }).job as Partial<JobRef> | undefined;
  return job && typeof job.dir === 'string' && job.dir ? { id: String(job.id ?? ''), dir: job.dir, studyInstanceUID: String(job.studyInstanceUID ?? '') } : undefined;
}

function outcomeOf(task: OutboxTask, taskFile: string): TaskOutcome {
  const delivered = task.instances.filter((i) => i.state === 'succeeded').length;
  const { name, calledAE, host, port } = task.destination;
  return {
    taskId: task.id,
    state: task.state === 'succeeded' ? 'succeeded' : 'failed',
    destination: { name, calledAE, host, port },
    delivered,
    failed: task.instances.length - delivered,
    attempts: task.attempts,
    error: task.lastError,
    taskFile,
    instances: task.instances.map(({ file, sopInstanceUID, state, status, statusText, error }) => ({ file, sopInstanceUID, state, status, statusText, error })),
  };
}

export = function register(RED: NodeAPI): void {
  const userDir = () => String((RED.settings as { userDir?: string }).userDir ?? process.cwd());

  function ClaraScuOutNode(this: Node, config: ClaraScuOutDef): void {
    RED.nodes.createNode(this, config);
    const node = this;
    let configError: string | undefined;
    const chosen = config.destination ? (RED.nodes.getNode(config.destination) as ClaraDicomDestinationNode | null) : null;
    const names = namesOf(config.destinations);
    const folders = (config.folders ?? 'seg,rtstruct').split(/[\s,]+/).filter(Boolean);
    const workRoot = resolveWorkRoot(config.workRoot, userDir());
    let outbox: Outbox | undefined;
    try {
      if (config.destination && !chosen) throw new Error('the chosen clara-dicom-destination does not exist');
      if (chosen && !chosen.destination) throw new Error(`${DESTINATION_TYPE}: ${chosen.settingsError ?? 'invalid settings'}`);
      outbox = new Outbox({
        owner: node.id,
        maxAttempts: number(config.maxAttempts, 5, 1, 1000, 'attempts'),
        backoffMs: number(config.backoff, 2, 0, 86400, 'backoff (s)') * 1000,
        maxBackoffMs: number(config.maxBackoff, 600, 0, 86400, 'longest backoff (s)') * 1000,
        concurrency: number(config.concurrency, 2, 1, 32, 'parallel tasks'),
        resolveDestination: (name) => resolveByName(name),
        log: (level, message) => (level === 'info' ? node.log(message) : level === 'warn' ? node.warn(message) : node.error(message)),
      });
    } catch (err) {
      configError = (err as Error).message;
      node.error(`${TYPE}: ${configError}`);
      statusAtDeploy(RED, node, errorStatus(configError));
    }

    /** The chosen config node first, then every clara-dicom-destination by name (case-insensitive, as Clara). */
    function resolveByName(name: string): ResolvedDestination | undefined {
      const wanted = name.trim().toLowerCase();
      if (chosen?.destination && chosen.destination.name.toLowerCase() === wanted) return chosen.destination;
      let found: ResolvedDestination | undefined;
      RED.nodes.eachNode((def) => {
        if (found || def.type !== DESTINATION_TYPE) return;
        const live = RED.nodes.getNode(def.id) as ClaraDicomDestinationNode | null;
        if (live?.destination && live.destination.name.toLowerCase() === wanted) found = live.destination;
      });
      return found;
    }

    let lastText = '';
    let lastStatusAt = 0;
    let statusTimer: NodeJS.Timeout | undefined;
    let tick: NodeJS.Timeout | undefined;
    let lastOutcome: { fill: 'green' | 'red'; text: string } | undefined;

    type Status = { fill: 'blue' | 'yellow' | 'green' | 'red'; shape: 'dot' | 'ring'; text: string };
    let lastKind = '';

    function currentStatus(): { kind: string; status: Status } | undefined {
      if (!outbox) return undefined;
      const s = outbox.snapshot();
      const queued = s.pending - s.waiting.length;
      if (s.inProgress.length > 0) {
        const r = s.inProgress[0];
        const more = s.inProgress.length - 1 + s.pending;
        const text = more > 0
          ? RED._('clara-scu-out.status.sendingMore', { delivered: r.delivered, total: r.total, more })
          : RED._('clara-scu-out.status.sending', { delivered: r.delivered, total: r.total });
        return { kind: 'sending', status: { fill: 'blue', shape: 'dot', text } };
      }
      if (s.waiting.length > 0) {
        const w = s.waiting.reduce((a, b) => (a.nextAttemptAt < b.nextAttemptAt ? a : b));
        const seconds = Math.max(0, Math.ceil((Date.parse(w.nextAttemptAt) - Date.now()) / 1000));
        const text = RED._('clara-scu-out.status.retrying', { seconds, attempt: w.attempt, attempts: w.maxAttempts, error: statusLine(w.lastError ?? '', 80) });
        return { kind: 'retrying', status: { fill: 'yellow', shape: 'ring', text } };
      }
      if (queued > 0) return { kind: 'pending', status: { fill: 'blue', shape: 'ring', text: RED._('clara-scu-out.status.pending', { count: queued }) } };
      if (lastOutcome) return { kind: 'outcome', status: { ...lastOutcome, shape: 'dot' } };
      return { kind: 'idle', status: { fill: 'green', shape: 'ring', text: RED._('clara-scu-out.status.idle') } };
    }

    function showStatus(): void {
      const current = currentStatus();
      if (!current) return;
      const { kind, status } = current;
      status.text = status.text.slice(0, 80);
      lastKind = kind;
      if (status.text === lastText) return;
      lastText = status.text;
      lastStatusAt = Date.now();
      node.status(status);
    }

    /**
     * A new kind of status (sending, retrying, idle...) shows at once; counters within one kind at most
     * every STATUS_INTERVAL_MS (the editor gets each over its websocket), the last one always.
     */
    function refreshStatus(): void {
      const wait = STATUS_INTERVAL_MS - (Date.now() - lastStatusAt);
      if (wait <= 0 || currentStatus()?.kind !== lastKind) return showStatus();
      if (!statusTimer) statusTimer = setTimeout(() => {
        statusTimer = undefined;
        showStatus();
      }, wait);
    }

    if (outbox) {
      outbox.on('update', refreshStatus);
      outbox.on('progress', refreshStatus);
      outbox.on('settled', (task) => {
        const taskFile = join(task.jobDir, 'outbox', `${task.id}.json`);
        const outcome = outcomeOf(task, taskFile);
        const context = task.context ?? {};
        const job = (context.job as JobRef | undefined) ?? undefined;
        if (job && existsSync(jobFilePath(job.dir))) {
          try {
            if (outcome.state === 'succeeded') {
              updateJob(job.dir, (r) => {
                r.timestamps[`sent:${task.destination.name}`] = new Date().toISOString();
                r.counts.sentInstances = (r.counts.sentInstances ?? 0) + outcome.delivered;
              });
            } else recordJobError(job.dir, STAGE, `${task.destination.name}: ${outcome.error ?? 'not delivered'}`);
          } catch (err) {
            node.warn(`${TYPE}: cannot update ${job.dir}/job.json: ${(err as Error).message}`);
          }
        }
        if (outcome.state === 'failed') node.warn(`${TYPE}: task ${task.id} failed: ${outcome.error}`);
        lastOutcome = outcome.state === 'succeeded'
          ? { fill: 'green', text: RED._('clara-scu-out.status.delivered', { count: outcome.delivered, destination: task.destination.name }) }
          : { fill: 'red', text: RED._('clara-scu-out.status.failed', { error: statusLine(outcome.error ?? '', 70) }) };
        const msg: Record<string, unknown> = { topic: task.destination.name, payload: outcome };
        if (job) msg.job = job;
        if (typeof context.msgid === 'string') msg._queuedMsgid = context.msgid;
        node.send([null, msg as NodeMessageInFlow]);
        refreshStatus();
      });
      // The retry countdown moves even when nothing else happens.
      tick = setInterval(() => {
        if (outbox && outbox.snapshot().waiting.length > 0) showStatus();
      }, 1000);
      tick.unref();
      // Jobs live where the clara-dicom-in that made them keeps them, which need not be this node's work
      // root: after a restart, this node's tasks are looked for in every receiver's work root too.
      const roots = new Set([workRoot]);
      RED.nodes.eachNode((def) => {
        if (def.type === 'clara-dicom-in' && !(def as { d?: boolean }).d) roots.add(resolveWorkRoot((def as { workRoot?: string }).workRoot, userDir()));
      });
      for (const root of roots) {
        const resumed = outbox.resume(root);
        if (resumed.length > 0) node.log(`${TYPE}: resumed ${resumed.length} pending task(s) from ${root}`);
      }
      const initial = currentStatus();
      if (initial) {
        lastKind = initial.kind;
        lastText = initial.status.text;
        lastStatusAt = Date.now();
        statusAtDeploy(RED, node, initial.status);
      }
    }

    node.on('input', (msg: NodeMessageInFlow, send, done) => {
      try {
        if (configError || !outbox) throw new Error(configError ?? 'not configured');
        const job = jobOf(msg);
        const m = msg as { seg?: { files?: unknown }; rtstruct?: { files?: unknown }; payload?: unknown; destinations?: unknown };
        let files = [...filesOfList(m.seg?.files), ...filesOfList(m.rtstruct?.files)];
        if (files.length === 0) {
          if (typeof m.payload === 'string' && m.payload) files = [m.payload];
          else if (Array.isArray(m.payload)) files = filesOfList(m.payload);
        }
        files = files.map((f) => (isAbsolute(f) || !job ? resolvePath(f) : resolvePath(job.dir, f)));
        files = expand(files);
        if (files.length === 0 && job) files = jobOutputFiles(job.dir, folders);
        if (files.length === 0) throw new Error(job ? `nothing to send: no files in msg, and none in ${folders.map((f) => `${f}/`).join(', ')} of job ${job.id}` : 'nothing to send: no msg.job, and no files in msg.seg, msg.rtstruct or msg.payload');
        const wanted = m.destinations !== undefined ? namesOf(m.destinations) : [...(chosen?.destination ? [chosen.destination.name] : []), ...names];
        if (wanted.length === 0) throw new Error('no destination: choose a clara-dicom-destination, name some, or set msg.destinations');
        // Files outside a job still need a durable home for their task: a send folder under the work root.
        const jobDir = job?.dir ?? join(workRoot, 'scu-out');
        const context: Record<string, unknown> = { msgid: msg._msgid };
        if (job) context.job = job;
        const queued: QueuedSummary = { tasks: [] };
        for (const name of new Set(wanted.map((n) => n.trim()))) {
          const task = outbox.enqueue({ jobDir, files, destination: name, context });
          queued.tasks.push({ id: task.id, destination: name, instances: task.instances.length, file: join(task.jobDir, 'outbox', `${task.id}.json`), state: task.state });
        }
        if (job && existsSync(jobFilePath(job.dir))) updateJob(job.dir, (r) => {
          r.timestamps.sending = new Date().toISOString();
        });
        (msg as NodeMessageInFlow & { scu: QueuedSummary }).scu = queued;
        send([msg, null]);
        refreshStatus();
        done();
      } catch (err) {
        const message = (err as Error).message;
        node.status(errorStatus(message));
        lastText = '';
        done(new Error(`${TYPE}: ${message}`));
      }
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      clearTimeout(statusTimer);
      clearInterval(tick);
      const closing = outbox;
      outbox = undefined;
      (closing ? closing.close() : Promise.resolve()).finally(() => {
        node.status({});
        done();
      });
    });
  }

  RED.nodes.registerType(TYPE, ClaraScuOutNode);
};
