import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { type InferenceConfig, type InferenceFields, inferenceConfigFromFields } from '../../lib/infer/config';
import { type JobInferenceResult, LABEL_FORMATS, type LabelFormat, inferJob } from '../../lib/infer/job';
import { BUNDLED_MODEL_REPOSITORY, type InferenceServer, type ServerHealth, connectInferenceServer } from '../../lib/infer/server';
import { SlidingWindowAbortedError } from '../../lib/infer/sliding-window';
import { type JobRef, jobRefOf, messagePath, recordJobError, setJobState, updateJob } from '../../lib/job';
import type { ClaraTritonServerNode } from '../clara-triton-server/server-node';
import { type SendFunction, workJobsInOrder } from '../job-queue';
import { type Translate, errorStatus, statusAtDeploy, statusLine } from '../status-text';

/** The editor's settings, as Node-RED stores them. */
type ClaraTritonInferDef = NodeDef & InferenceFields & { server?: string; format?: string };

const TYPE = 'clara-triton-infer';
const STAGE = 'infer';
/** Status updates during a job, at most this often: the editor gets every one over its websocket. */
const PROGRESS_INTERVAL_MS = 250;

/** msg.inference: where the results are and what they hold, never the voxels. */
type InferenceSummary = Omit<JobInferenceResult, 'series'> & {
  series: Array<Pick<JobInferenceResult['series'][number], 'seriesInstanceUID' | 'seriesDescription' | 'segmentation' | 'dims' | 'labelCounts' | 'windows' | 'seconds' | 'modelSeconds'>>;
};

function summaryOf(result: JobInferenceResult): InferenceSummary {
  return {
    ...result,
    series: result.series.map(({ seriesInstanceUID, seriesDescription, segmentation, dims, labelCounts, windows, seconds, modelSeconds }) => ({
      seriesInstanceUID, seriesDescription, segmentation, dims, labelCounts, windows, seconds, modelSeconds,
    })),
  };
}

function healthText(health: ServerHealth, model: string, _: Translate): { fill: 'green' | 'red' | 'yellow'; text: string } {
  if (!health.live) return { fill: 'red', text: _('clara-triton-infer.status.notLive', { detail: health.detail ?? 'unreachable' }) };
  if (!health.ready) return { fill: 'yellow', text: health.detail ? _('clara-triton-infer.status.notReadyDetail', { detail: health.detail }) : _('clara-triton-infer.status.notReady') };
  if (health.modelReady === false) return { fill: 'red', text: _('clara-triton-infer.status.modelNotReady', { model, detail: health.detail ?? '' }) };
  return { fill: 'green', text: _('clara-triton-infer.status.ready', { model }) };
}

export = function register(RED: NodeAPI): void {
  function ClaraTritonInferNode(this: Node, config: ClaraTritonInferDef): void {
    RED.nodes.createNode(this, config);
    const node = this;
    let inference: InferenceConfig | undefined;
    let configError: string | undefined;
    const format = (config.format || 'nifti-gz') as LabelFormat;
    try {
      inference = inferenceConfigFromFields(config);
      if (!LABEL_FORMATS.includes(format)) throw new Error(`output format must be one of ${LABEL_FORMATS.join(', ')}, not ${JSON.stringify(config.format)}`);
    } catch (err) {
      configError = (err as Error).message;
    }

    // A flow without a clara-triton-server node runs the bundled model in-process: a fresh install works.
    const serverNode = config.server ? (RED.nodes.getNode(config.server) as ClaraTritonServerNode | null) : null;
    let ownServer: InferenceServer | undefined;
    let server: InferenceServer | undefined;
    if (!configError) {
      if (config.server && !serverNode) configError = 'the chosen clara-triton-server configuration does not exist';
      else if (serverNode && !serverNode.server) configError = `clara-triton-server: ${serverNode.settingsError ?? 'no server'}`;
      else server = serverNode?.server ?? (ownServer = connectInferenceServer({ mode: 'embedded', repository: BUNDLED_MODEL_REPOSITORY }));
    }
    if (configError) {
      node.error(`${TYPE}: ${configError}`);
      statusAtDeploy(RED, node, errorStatus(configError));
    }

    const abort = new AbortController();
    // Set once the handlers are in place, below; health is shown only while no job runs.
    let jobs: { busy(): boolean } | undefined;

    /** ServerLive, ServerReady and ModelReady in the status, while no job is running. */
    async function showHealth(): Promise<void> {
      if (!server || !inference) return;
      const health = await server.health(inference.model, inference.version || undefined);
      if (jobs?.busy() || abort.signal.aborted) return;
      const { fill, text } = healthText(health, inference.model, RED._);
      node.status({ fill, shape: 'ring', text: statusLine(text) });
      if (fill !== 'green') node.warn(`${TYPE}: ${server.description}: ${text}`);
    }
    if (server) void showHealth();

    async function inferOne(msg: NodeMessageInFlow, send: SendFunction): Promise<void> {
      const job: JobRef = jobRefOf(msg as { job?: unknown });
      let result: JobInferenceResult;
      try {
        if (configError || !server || !inference) throw new Error(configError ?? 'not configured');
        const model = inference.model;
        setJobState(job.dir, 'inferring', 'inferring');
        node.status({ fill: 'blue', shape: 'dot', text: RED._('clara-triton-infer.status.loading', { model }) });
        let lastStatus = 0;
        result = await inferJob(job.dir, {
          server,
          config: inference,
          format,
          selectedImages: messagePath(msg, 'selection', 'selectedImages'),
          signal: abort.signal,
          onProgress: (p) => {
            const now = Date.now();
            if (p.stage === 'infer' && now - lastStatus < PROGRESS_INTERVAL_MS && p.windowsDone !== p.windowsTotal) return;
            lastStatus = now;
            const text = p.stage === 'infer'
              ? RED._('clara-triton-infer.status.windows', { done: p.windowsDone ?? 0, total: p.windowsTotal ?? 0 })
              : RED._(p.stage === 'preprocess' ? 'clara-triton-infer.status.preprocessing' : 'clara-triton-infer.status.postprocessing');
            node.status({
              fill: 'blue', shape: 'dot',
              text: p.seriesTotal > 1 ? RED._('clara-triton-infer.status.ofSeries', { status: text, series: p.series, total: p.seriesTotal }) : text,
            });
          },
        });
      } catch (err) {
        const message = err instanceof SlidingWindowAbortedError ? 'inference stopped (node closed or redeployed) before the job was segmented' : (err as Error).message;
        recordJobError(job.dir, STAGE, message, true);
        throw new Error(`job ${job.id}: ${message}`);
      }
      const labelled = result.series.reduce((n, s) => n + Object.values(s.labelCounts).reduce((a, b) => a + b, 0), 0);
      updateJob(job.dir, (r) => {
        r.state = 'inferred';
        r.timestamps.inferred = new Date().toISOString();
        r.counts.segmentedSeries = result.series.length;
        r.counts.labelledVoxels = labelled;
      });
      (msg as NodeMessageInFlow & { inference: InferenceSummary }).inference = summaryOf(result);
      send(msg);
      const counts = Object.entries(result.series[0]?.labelCounts ?? {}).map(([label, n]) => `${label}: ${n}`).join(', ');
      node.status(
        labelled > 0
          ? { fill: 'green', shape: 'dot', text: statusLine(RED._('clara-triton-infer.status.segmented', { series: result.series.length, counts, seconds: result.seconds.toFixed(1) })) }
          : { fill: 'green', shape: 'ring', text: RED._('clara-triton-infer.status.noFindings', { series: result.series.length, seconds: result.seconds.toFixed(1) }) },
      );
    }

    jobs = workJobsInOrder(node, {
      type: TYPE,
      translate: RED._,
      work: inferOne,
      stopping: () => abort.abort(),
      stopped: () => ownServer?.close(),
    });
  }

  RED.nodes.registerType(TYPE, ClaraTritonInferNode);
};
