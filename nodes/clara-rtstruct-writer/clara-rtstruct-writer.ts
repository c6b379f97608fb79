import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { generateUid } from '../../lib/dicom/uids';
import { type JobRef, jobRefOf, messagePath, recordJobError, setJobState, updateJob } from '../../lib/job';
import { type SendFunction, prepareStageThreadSoon, settingsAtDeploy, workJobsInOrder } from '../job-queue';
import { statusLine } from '../status-text';
import { MAX_TOLERANCE_PX } from '../../lib/rtstruct/contours';
import type { JobRtStructResult } from '../../lib/rtstruct/job';
import { writeJobStructureSetsOffThread } from '../../lib/offload';
import { type RoiLabel, parseLabels } from '../../lib/rtstruct/labels';
import { DEFAULT_SERIES_DESCRIPTION, DEFAULT_STRUCTURE_SET_LABEL } from '../../lib/rtstruct/structure-set';

/** The editor's settings, as Node-RED stores them. */
interface ClaraRtStructWriterDef extends NodeDef {
  labels?: string;
  styles?: string;
  structureSetLabel?: string;
  seriesDescription?: string;
  uidRoot?: string;
  tolerance?: number | string;
}

interface Settings {
  labels: RoiLabel[];
  structureSetLabel: string;
  seriesDescription: string;
  uidRoot?: string;
  tolerance: number;
}

const TYPE = 'clara-rtstruct-writer';
const STAGE = 'rtstruct';

/** Checks every setting at deploy, so a bad one shows at once rather than on the first study. */
function settingsOf(config: ClaraRtStructWriterDef): Settings {
  const labels = parseLabels(config.labels ?? '', config.styles ?? '');
  const structureSetLabel = (config.structureSetLabel ?? '').trim() || DEFAULT_STRUCTURE_SET_LABEL;
  if (structureSetLabel.length > 16 || /[\\\x00-\x1f]/.test(structureSetLabel)) throw new Error(`the structure set label must be at most 16 characters, without backslash (SH): "${structureSetLabel}"`);
  const seriesDescription = config.seriesDescription === undefined ? DEFAULT_SERIES_DESCRIPTION : config.seriesDescription.trim();
  if (seriesDescription.length > 64 || /[\\\x00-\x1f]/.test(seriesDescription)) throw new Error('the series description must be at most 64 characters, without backslash');
  const uidRoot = (config.uidRoot ?? '').trim() || undefined;
  if (uidRoot) generateUid(uidRoot);
  const raw = config.tolerance === undefined || config.tolerance === '' ? 0 : Number(config.tolerance);
  if (!Number.isFinite(raw) || raw < 0 || raw > MAX_TOLERANCE_PX) throw new Error(`the point reduction tolerance must be from 0 to ${MAX_TOLERANCE_PX} pixel, not ${JSON.stringify(config.tolerance)}`);
  return { labels, structureSetLabel, seriesDescription, uidRoot, tolerance: raw };
}

/** The model that made the masks, for ROI Generation Description: msg.inference.model and version. */
function algorithmOf(inference: unknown): string | undefined {
  const i = inference as { model?: unknown; version?: unknown } | undefined;
  if (!i || typeof i.model !== 'string' || !i.model) return undefined;
  return typeof i.version === 'string' && i.version ? `${i.model} version ${i.version}` : i.model;
}

export = function register(RED: NodeAPI): void {
  function ClaraRtStructWriterNode(this: Node, config: ClaraRtStructWriterDef): void {
    RED.nodes.createNode(this, config);
    const node = this;
    const { settings, configError } = settingsAtDeploy(RED, node, TYPE, () => settingsOf(config));

    let closing = false;

    async function writeOne(msg: NodeMessageInFlow, send: SendFunction): Promise<void> {
      const job: JobRef = jobRefOf(msg as { job?: unknown });
      let result: JobRtStructResult;
      try {
        if (configError || !settings) throw new Error(configError ?? 'not configured');
        if (closing) throw new Error('the node was closed or redeployed before the job was written');
        const inference = (msg as { inference?: unknown }).inference;
        setJobState(job.dir, 'writing', 'rtstruct-writing');
        node.status({ fill: 'blue', shape: 'dot', text: RED._('clara-rtstruct-writer.status.contouring') });
        // In a stage thread (lib/offload): the contours are traced without holding the event loop.
        result = await writeJobStructureSetsOffThread(job.dir, { ...settings, inference, algorithm: algorithmOf(inference), parserDir: messagePath(msg, 'parser', 'dir') });
      } catch (err) {
        const message = (err as Error).message;
        recordJobError(job.dir, STAGE, message, true);
        throw new Error(`job ${job.id}: ${message}`);
      }
      const contours = result.files.reduce((n, f) => n + f.rois.reduce((m, r) => m + r.contours, 0), 0);
      const found = result.files.length > 0;
      updateJob(job.dir, (r) => {
        r.state = found ? 'rtstruct-written' : 'no-findings';
        r.timestamps[found ? 'rtstruct-written' : 'no-findings'] = new Date().toISOString();
        r.counts.rtstructFiles = result.files.length;
        r.counts.rtstructContours = contours;
        r.counts.rtstructEmptySeries = result.empty.length;
      });
      (msg as NodeMessageInFlow & { rtstruct: JobRtStructResult }).rtstruct = result;
      if (found) {
        send([msg, null]);
        const rois = result.files[0].rois.filter((r) => r.contours > 0).length;
        node.status({ fill: 'green', shape: 'dot', text: statusLine(RED._('clara-rtstruct-writer.status.wrote', { files: result.files.length, rois, contours, seconds: result.seconds.toFixed(1) })) });
      } else {
        send([null, msg]);
        node.status({ fill: 'green', shape: 'ring', text: RED._('clara-rtstruct-writer.status.noFindings', { empty: result.empty.length }) });
      }
    }

    if (settings) prepareStageThreadSoon(node, 'writeJobStructureSets');
    workJobsInOrder(node, {
      type: TYPE,
      translate: RED._,
      work: writeOne,
      stopping: () => {
        closing = true;
      },
    });
  }

  RED.nodes.registerType(TYPE, ClaraRtStructWriterNode);
};
