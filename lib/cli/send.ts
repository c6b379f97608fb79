import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DEFAULT_CALLING_AE, parseDestinationSpec } from '../dimse/destination';
import { Outbox, type OutboxTask, jobOutputFiles } from '../dimse/outbox';
import { PolicyConfigError } from '../dimse/policy';
import { InputError, UsageError, intOption, parseArgs, rejectUnknownOptions } from './args';

const FLAGS = ['json'];
const OPTIONS = ['to', 'calling-ae', 'retries', 'timeout', 'max-pdu', 'outbox', ...FLAGS];

/** Every file named, folders walked (hidden files and .json left out). */
function filesOf(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch {
      throw new InputError(`${p} does not exist`);
    }
    if (isDir) out.push(...jobOutputFiles(p, ['.'], true));
    else out.push(p);
  }
  return out;
}

/**
 * clara-dicom send <files|dir>... --to AE@host:port [--calling-ae AE] [--retries N] [--timeout S] [--max-pdu N] [--outbox DIR] [--json]
 * C-STORE through the same outbox as clara-scu-out: one association, contexts per SOP class and transfer
 * syntax, files sent as they are. Exit 0 when every instance was stored, 1 when any was not (each named on
 * stderr), 2 for wrong usage.
 */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, FLAGS);
  rejectUnknownOptions(args, OPTIONS);
  if (args.positional.length === 0) throw new UsageError('name the files or folders to send');
  const to = args.options.get('to');
  if (typeof to !== 'string') throw new UsageError('--to AE@host:port is required');
  const callingAE = args.options.get('calling-ae');
  if (callingAE === true) throw new UsageError('--calling-ae needs a value');
  let destination;
  try {
    destination = parseDestinationSpec(to, callingAE ?? DEFAULT_CALLING_AE);
  } catch (err) {
    if (err instanceof PolicyConfigError) throw new UsageError(err.message);
    throw err;
  }
  const timeoutS = intOption(args, 'timeout', 30, 1, 3600);
  destination.connectTimeoutMs = Math.min(timeoutS, 10) * 1000;
  destination.pduTimeoutMs = timeoutS * 1000;
  destination.maxPduLength = intOption(args, 'max-pdu', 65536, 4096, 16 * 1024 * 1024);
  const retries = intOption(args, 'retries', 0, 0, 100);
  const files = filesOf(args.positional.map((p) => resolve(p)));
  if (files.length === 0) throw new InputError('no files to send');

  // The task needs a folder to live in; a temporary one unless the caller wants to keep it.
  const kept = args.options.get('outbox');
  if (kept === true) throw new UsageError('--outbox needs a folder');
  const home = typeof kept === 'string' ? resolve(kept) : mkdtempSync(join(tmpdir(), 'clara-send-'));
  const started = process.hrtime.bigint();
  const outbox = new Outbox({ maxAttempts: retries + 1, backoffMs: 1000, maxBackoffMs: 30000, concurrency: 1 });
  let task: OutboxTask;
  try {
    const queued = outbox.enqueue({ jobDir: home, files, destination });
    task = await new Promise<OutboxTask>((done) => {
      outbox.on('settled', (t) => {
        if (t.id === queued.id) done(t);
      });
    });
    await outbox.close();
  } finally {
    if (typeof kept !== 'string') rmSync(home, { recursive: true, force: true });
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const delivered = task.instances.filter((i) => i.state === 'succeeded').length;
  if (args.options.has('json')) {
    process.stdout.write(JSON.stringify({ destination: to, delivered, failed: task.instances.length - delivered, attempts: task.attempts, seconds, error: task.lastError,
      instances: task.instances.map(({ file, sopInstanceUID, state, status, statusText, error }) => ({ file, sopInstanceUID, state, status, statusText, error })) }) + '\n');
  } else {
    process.stdout.write(`sent ${delivered} of ${task.instances.length} instance(s) to ${to} in ${seconds.toFixed(2)} s (${task.attempts} attempt(s))\n`);
  }
  if (delivered === task.instances.length) return 0;
  for (const i of task.instances.filter((x) => x.state !== 'succeeded').slice(0, 20)) process.stderr.write(`not sent: ${i.file}: ${i.error ?? i.statusText ?? 'unknown'}\n`);
  throw new InputError(task.lastError ?? `${task.instances.length - delivered} instance(s) not delivered`);
}
