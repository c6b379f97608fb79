import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { type JobRef, jobRefOf, messagePath, recordJobError, setJobState, updateJob } from '../../lib/job';
import { type SendFunction, prepareStageThreadSoon, settingsAtDeploy, workJobsInOrder } from '../job-queue';
import { type InferenceInput, type JobSegmentationOptions, type JobSegmentationResult, type SegmentDefinition, checkSegmentationSettings, parseSegmentDefinitions } from '../../lib/seg';
import { writeJobSegmentationsOffThread } from '../../lib/offload';

/** The editor's settings, as Node-RED stores them (text fields stay strings). */
type ClaraSegWriterDef = NodeDef & {
  labels?: string;
  codes?: string;
  algorithmName?: string;
  algorithmVersion?: string;
  uidRoot?: string;
  seriesDescription?: string;
  seriesNumber?: string | number;
  contentLabel?: string;
  contentDescription?: string;
  contentCreator?: string;
  omitEmptyFrames?: boolean;
  fractional?: boolean;
};

const TYPE = 'clara-seg-writer';
const STAGE = 'seg';

/** msg.seg: the folder and the files written, never the pixels. */
interface SegSummary {
  dir: string;
  files: Array<{ file: string; sopInstanceUID: string; seriesInstanceUID: string; sourceSeriesInstanceUID: string; segmentationType: string; segments: JobSegmentationResult['files'][number]['segments']; frames: number }>;
  empty: JobSegmentationResult['empty'];
  algorithm: { name: string; version: string };
  seconds: number;
}

interface Settings {
  segments: SegmentDefinition[];
  options: Omit<JobSegmentationOptions, 'segments' | 'inference' | 'selectedImages'>;
}

/** The node's settings checked once at deploy, with the same checks the writer applies. */
function settingsOf(config: ClaraSegWriterDef): Settings {
  const segments = parseSegmentDefinitions(config.labels, config.codes);
  const text = (v: string | undefined) => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined);
  const seriesNumberText = config.seriesNumber === undefined ? '' : String(config.seriesNumber).trim();
  if (seriesNumberText !== '' && !/^\d+$/.test(seriesNumberText)) throw new Error(`series number must be a whole number, not ${JSON.stringify(seriesNumberText)}`);
  const name = text(config.algorithmName);
  const options: Settings['options'] = {
    algorithm: name ? { name, version: text(config.algorithmVersion) } : undefined,
    uidRoot: text(config.uidRoot),
    seriesDescription: text(config.seriesDescription),
    seriesNumber: seriesNumberText === '' ? undefined : Number(seriesNumberText),
    contentLabel: text(config.contentLabel),
    contentDescription: text(config.contentDescription),
    contentCreatorName: text(config.contentCreator),
    omitEmptyFrames: config.omitEmptyFrames !== false,
    fractional: config.fractional === true,
  };
  // outDir and the algorithm are filled per job; the rest fails here, at deploy, rather than on the first study.
  checkSegmentationSettings(segments, { ...options, outDir: '-', algorithm: options.algorithm ?? { name: 'model from msg.inference' } });
  return { segments, options };
}

function inferenceOf(msg: NodeMessageInFlow): InferenceInput | undefined {
  const inference = (msg as { inference?: unknown }).inference;
  return inference && typeof inference === 'object' ? (inference as InferenceInput) : undefined;
}

export = function register(RED: NodeAPI): void {
  function ClaraSegWriterNode(this: Node, config: ClaraSegWriterDef): void {
    RED.nodes.createNode(this, config);
    const node = this;
    const { settings, configError } = settingsAtDeploy(RED, node, TYPE, () => settingsOf(config));


    async function writeOne(msg: NodeMessageInFlow, send: SendFunction): Promise<void> {
      const job: JobRef = jobRefOf(msg as { job?: unknown });
      let result: JobSegmentationResult;
      try {
        if (configError || !settings) throw new Error(configError ?? 'not configured');
        setJobState(job.dir, 'writing', 'seg-writing');
        node.status({ fill: 'blue', shape: 'dot', text: RED._('clara-seg-writer.status.writing') });
        // In a stage thread (lib/offload): the frames are built without holding the event loop.
        result = await writeJobSegmentationsOffThread(job.dir, { ...settings.options, segments: settings.segments, inference: inferenceOf(msg), selectedImages: messagePath(msg, 'selection', 'selectedImages') });
      } catch (err) {
        const message = (err as Error).message;
        recordJobError(job.dir, STAGE, message, true);
        throw new Error(`job ${job.id}: ${message}`);
      }
      const frames = result.files.reduce((n, f) => n + f.frames, 0);
      const found = result.files.length > 0;
      updateJob(job.dir, (r) => {
        r.state = found ? 'seg-written' : 'no-findings';
        r.timestamps[found ? 'seg-written' : 'no-findings'] = new Date().toISOString();
        r.counts.segFiles = result.files.length;
        r.counts.segFrames = frames;
        r.counts.segEmptySeries = result.empty.length;
      });
      const summary: SegSummary = {
        dir: result.dir,
        files: result.files.map(({ file, sopInstanceUID, seriesInstanceUID, sourceSeriesInstanceUID, segmentationType, segments, frames: n }) => ({
          file, sopInstanceUID, seriesInstanceUID, sourceSeriesInstanceUID, segmentationType, segments, frames: n,
        })),
        empty: result.empty,
        algorithm: result.algorithm,
        seconds: result.seconds,
      };
      (msg as NodeMessageInFlow & { seg: SegSummary }).seg = summary;
      send(found ? [msg, null] : [null, msg]);
      node.status(
        found
          ? { fill: 'green', shape: 'dot', text: RED._(frames === 1 ? 'clara-seg-writer.status.wroteOneFrame' : 'clara-seg-writer.status.wrote', { files: result.files.length, frames, seconds: result.seconds.toFixed(1) }) }
          : { fill: 'green', shape: 'ring', text: RED._('clara-seg-writer.status.noFindings') },
      );
    }

    if (settings) prepareStageThreadSoon(node, 'writeJobSegmentations');
    workJobsInOrder(node, { type: TYPE, translate: RED._, work: writeOne });
  }

  RED.nodes.registerType(TYPE, ClaraSegWriterNode);
};
