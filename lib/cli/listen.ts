import { resolve } from 'node:path';
import { GROUPINGS, type Grouping } from '../ingest/assembler';
import { PolicyConfigError, StoreScp, parseAllowList, validateAeTitle } from '../dimse';
import { InputError, UsageError, intOption, parseArgs, rejectUnknownOptions, stringOption } from './args';

/**
 * clara-dicom listen <work-root> [--port N] [--ae AET] [--timeout S] [--allow AE[@host],...]
 *                                [--grouping study|study-calling-ae|association] [--host ADDR] [--max-pdu N]
 *
 * Runs the C-STORE SCP on its own and prints one JSON line per completed job on stdout
 * ({"job": {...}, "summary": {...}}); logs go to stderr. SIGINT/SIGTERM close it: jobs still receiving
 * are completed and printed first, so nothing received goes unreported.
 */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['quiet']);
  rejectUnknownOptions(args, ['port', 'ae', 'timeout', 'allow', 'grouping', 'host', 'max-pdu', 'quiet']);
  if (args.positional.length !== 1) throw new UsageError(args.positional.length === 0 ? 'the work root is missing' : 'expected one work root');
  const port = intOption(args, 'port', 11112, 0, 65535);
  const timeout = Number(args.options.get('timeout') ?? 5);
  if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError('--timeout must be a number of seconds above 0');
  const grouping = stringOption<Grouping>(args, 'grouping', GROUPINGS, 'study');
  const maxPdu = intOption(args, 'max-pdu', 65536, 4096, 16 * 1024 * 1024);
  const host = args.options.get('host');
  if (host === true) throw new UsageError('--host needs an address');
  const quiet = args.options.has('quiet');
  let aeTitle: string;
  let allow;
  try {
    const ae = args.options.get('ae');
    if (ae === true) throw new UsageError('--ae needs an AE title');
    aeTitle = validateAeTitle(ae ?? 'CLARA');
    const allowText = args.options.get('allow');
    if (allowText === true) throw new UsageError('--allow needs AE[@host],...');
    allow = parseAllowList(allowText ?? '');
  } catch (err) {
    if (err instanceof PolicyConfigError) throw new UsageError(err.message);
    throw err;
  }

  const log = (level: string, message: string) => {
    if (quiet && level === 'info') return;
    process.stderr.write(`${new Date().toISOString()} ${level.toUpperCase()} ${message}\n`);
  };
  let scp: StoreScp;
  try {
    scp = new StoreScp({
      workRoot: resolve(args.positional[0]),
      aeTitle,
      port,
      host: host ?? '0.0.0.0',
      allow,
      grouping,
      studyTimeoutSeconds: timeout,
      maxPduLength: maxPdu,
      log,
    });
  } catch (err) {
    throw new InputError((err as Error).message);
  }
  scp.on('job', (job) => process.stdout.write(JSON.stringify(job) + '\n'));
  scp.on('error', (err) => log('error', err.message));
  try {
    const bound = await scp.listen();
    // One machine-readable line, so scripts started with --port 0 can learn the port.
    process.stderr.write(`listening ${JSON.stringify({ aeTitle, host: bound.host, port: bound.port })}\n`);
  } catch (err) {
    throw new InputError((err as Error).message);
  }

  return new Promise<number>((done) => {
    const stop = (signal: string) => {
      log('info', `${signal}: closing`);
      scp.close({ flush: true }).then(
        () => done(0),
        (err: Error) => {
          log('error', `close failed: ${err.message}`);
          done(1);
        },
      );
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}
