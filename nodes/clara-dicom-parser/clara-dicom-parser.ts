import { join } from 'node:path';
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { DICOM_DIR, jobRefOf, operatorDir, recordJobError, setJobState, updateJob } from '../../lib/job';
import {
  OUTPUT_FORMATS, type OutputFormat, ParseAbortedError, type ParseResult, type ParserSummary, SPACING_POLICIES, type SpacingPolicy,
  parseStudy, parserSummaryOf,
} from '../../lib/volume/parse';
import { errorStatus, statusAtDeploy } from '../status-text';

/** The editor's settings, as Node-RED stores them. */
interface ClaraDicomParserDef extends NodeDef {
  format?: string;
  spacingPolicy?: string;
}

const STAGE = 'parse';
/** The job's folder for this operator's output (Clara's operators each own one). */
const PARSER_DIR = 'parser';

export = function register(RED: NodeAPI): void {
  function ClaraDicomParserNode(this: Node, config: ClaraDicomParserDef): void {
    RED.nodes.createNode(this, config);
    const node = this;
    const format = (config.format || 'nifti-gz') as OutputFormat;
    const spacingPolicy = (config.spacingPolicy || 'warn') as SpacingPolicy;
    const configError = !OUTPUT_FORMATS.includes(format)
      ? `format must be one of ${OUTPUT_FORMATS.join(', ')}, not ${JSON.stringify(config.format)}`
      : !SPACING_POLICIES.includes(spacingPolicy)
        ? `spacing policy must be one of ${SPACING_POLICIES.join(', ')}, not ${JSON.stringify(config.spacingPolicy)}`
        : undefined;
    if (configError) {
      node.error(`clara-dicom-parser: ${configError}`);
      statusAtDeploy(RED, node, errorStatus(configError));
      node.on('input', (_msg: NodeMessageInFlow, _send, done) => done(new Error(`clara-dicom-parser: ${configError}`)));
      return;
    }

    // Jobs are parsed one at a time: each holds a volume in memory, and the disk is the bottleneck anyway.
    let queue: Promise<void> = Promise.resolve();
    let waiting = 0;
    const abort = new AbortController();
    node.status({});

    async function parseJob(msg: NodeMessageInFlow, send: (msg: NodeMessageInFlow) => void): Promise<void> {
      const job = jobRefOf(msg as { job?: unknown });
      const started = Date.now();
      setJobState(job.dir, 'parsing');
      node.status({ fill: 'blue', shape: 'dot', text: RED._('clara-dicom-parser.status.readingHeaders') });
      let result: ParseResult;
      try {
        result = await parseStudy(join(job.dir, DICOM_DIR), operatorDir(job.dir, PARSER_DIR), {
          format,
          spacingPolicy,
          clean: true,
          signal: abort.signal,
          onProgress: (p) => {
            if (p.stage === 'convert' && p.done < p.total) node.status({ fill: 'blue', shape: 'dot', text: RED._('clara-dicom-parser.status.parsing', { series: p.done + 1, total: p.total }) });
          },
        });
      } catch (err) {
        const message = err instanceof ParseAbortedError ? 'parser stopped (node closed or redeployed) before the job was parsed' : (err as Error).message;
        // On a full disk job.json may not take the failure either; the reason must still reach the flow.
        let unrecorded = '';
        try {
          recordJobError(job.dir, STAGE, message, true);
        } catch (recordErr) {
          unrecorded = ` (job.json could not record it: ${(recordErr as NodeJS.ErrnoException).code ?? (recordErr as Error).message})`;
        }
        throw new Error(`clara-dicom-parser: job ${job.id}: ${message}${unrecorded}`);
      }
      if (result.volumes.length === 0) {
        const reasons = [...new Set(result.skipped.map((s) => s.reason))].slice(0, 3).join('; ');
        const message = `no image series could be converted (${result.files} file(s), ${result.series} series)${reasons ? `: ${reasons}` : ''}`;
        recordJobError(job.dir, STAGE, message, true);
        throw new Error(`clara-dicom-parser: job ${job.id}: ${message}`);
      }
      updateJob(job.dir, (r) => {
        r.state = 'parsed';
        r.timestamps.parsed = new Date().toISOString();
        r.counts.volumes = result.volumes.length;
        r.counts.parseSkipped = result.skipped.length;
        r.counts.parseWarnings = result.warnings.length;
      });
      if (result.warnings.length > 0) {
        node.warn(`clara-dicom-parser: job ${job.id}: ${result.warnings.length} warning(s), first: ${result.warnings[0].message}`);
      }
      (msg as NodeMessageInFlow & { parser: ParserSummary }).parser = parserSummaryOf(result);
      send(msg);
      const skipped = result.skipped.filter((s) => s.kind === 'series' || s.kind === 'stack').length;
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      node.status({
        fill: 'green', shape: 'dot',
        text: RED._(skipped ? 'clara-dicom-parser.status.parsedSkipped' : 'clara-dicom-parser.status.parsed', { volumes: result.volumes.length, skipped, seconds }),
      });
    }

    node.on('input', (msg: NodeMessageInFlow, send, done) => {
      waiting++;
      if (waiting > 1) node.status({ fill: 'blue', shape: 'ring', text: RED._('clara-dicom-parser.status.queued', { count: waiting - 1 }) });
      queue = queue.then(async () => {
        waiting--;
        try {
          await parseJob(msg, send);
          done();
        } catch (err) {
          // The reason in the status; the job id with it in the log and the catch node, the stack at debug level.
          node.status(errorStatus((err as Error).message.replace(/^clara-dicom-parser: (job \S+: )?/, '')));
          if ((err as Error).stack) node.debug((err as Error).stack);
          done(err as Error);
        }
      });
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      // A parse in flight stops at its next file or stack; its job is marked failed.
      abort.abort();
      queue.finally(() => {
        node.status({});
        done();
      });
    });
  }

  RED.nodes.registerType('clara-dicom-parser', ClaraDicomParserNode);
};
