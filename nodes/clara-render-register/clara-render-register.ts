import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { type JobRef, insideDir, resolveWorkRoot, jobRefOf, messagePath, recordJobError, updateJob } from '../../lib/job';
import { publishedFiles, readPublishMeta } from '../../lib/render/publish';
import { renderPublishedOffThread } from '../../lib/offload';
import { PUBLISH_DIR, RENDER_DIR } from '../../lib/render/registry';
import { type SendFunction, prepareStageThreadSoon, settingsAtDeploy, workJobsInOrder } from '../job-queue';
import { type HttpApp, VIEWER_PATH, registerViewer } from '../render-viewer';

type Mode = 'viewer' | 'render-server';

/** The editor's settings, as Node-RED stores them (text fields stay strings). */
type ClaraRenderRegisterDef = NodeDef & {
  mode?: Mode;
  url?: string;
  timeout?: string | number;
  workRoot?: string;
};

const TYPE = 'clara-render-register';
const STAGE = 'render';
/** The editor's comms topic for "job rendered, here is its viewer" (the html subscribes to it). */
const VIEWER_LINK_TOPIC = 'clara-render-register/viewer';

/** msg.render in viewer mode: where the snapshots are and the viewer page of the job. */
interface RenderSummary {
  dir: string;
  snapshots: { axial: string; coronal: string; sagittal: string; montage: string };
  viewerUrl: string;
  centre: [number, number, number];
  lesion: boolean;
}

/** msg.render in render-server mode: what was posted and what the server answered. */
interface RenderServerSummary {
  url: string;
  status: number;
  files: string[];
  bytes: number;
  response: unknown;
}

/**
 * The body posted to a render server: one JSON document (simpler for a server to take than multipart, and
 * the files are a few MB of compressed volumes): config.meta parsed, config_render.json parsed, and every
 * file config.meta names as base64.
 */
interface RenderServerPost {
  job: { id: string; studyInstanceUID: string };
  meta: unknown;
  settings: unknown;
  files: Array<{ name: string; size: number; base64: string }>;
}

interface Settings {
  mode: Mode;
  url?: URL;
  timeoutMs: number;
  workRoot: string;
}

function settingsOf(config: ClaraRenderRegisterDef, userDir: string): Settings {
  const mode: Mode = config.mode === 'render-server' ? 'render-server' : 'viewer';
  const timeoutText = config.timeout === undefined || String(config.timeout).trim() === '' ? '30' : String(config.timeout).trim();
  const seconds = Number(timeoutText);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) throw new Error(`timeout must be 0–3600 seconds, not ${JSON.stringify(timeoutText)}`);
  const settings: Settings = { mode, timeoutMs: seconds * 1000, workRoot: resolveWorkRoot(config.workRoot, userDir) };
  if (mode === 'render-server') {
    const text = (config.url ?? '').trim();
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new Error(`render server URL ${JSON.stringify(text)} is not a URL (http://host:port/path)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`render server URL must be http or https, not ${url.protocol}`);
    settings.url = url;
  }
  return settings;
}

/** httpNodeRoot + the viewer path, as a browser on this Node-RED reaches it. */
function viewerBase(httpNodeRoot: unknown): string {
  const root = typeof httpNodeRoot === 'string' ? httpNodeRoot : '/';
  return `${root.replace(/\/+$/, '')}${VIEWER_PATH}`;
}

export = function register(RED: NodeAPI): void {
  const userDir = (): string => String((RED.settings as { userDir?: string }).userDir ?? process.cwd());
  const httpNode = RED.httpNode as unknown as HttpApp;

  function ClaraRenderRegisterNode(this: Node, config: ClaraRenderRegisterDef): void {
    RED.nodes.createNode(this, config);
    const node = this;
    const { settings, configError } = settingsAtDeploy(RED, node, TYPE, () => settingsOf(config, userDir()));
    // The default work root is listed even before a first job, so the list page answers from the start.
    if (settings?.mode === 'viewer') registerViewer(httpNode, settings.workRoot, (m) => node.warn(m));

    async function viewer(msg: NodeMessageInFlow, job: JobRef, publishDir: string): Promise<void> {
      // Jobs may live under another root than the default (clara-dicom-in's work root setting).
      registerViewer(httpNode, dirname(job.dir), (m) => node.warn(m));
      node.status({ fill: 'blue', shape: 'dot', text: RED._('clara-render-register.status.rendering') });
      // In a stage thread (lib/offload): the slices are drawn without holding the event loop.
      const result = await renderPublishedOffThread(publishDir, insideDir(job.dir, RENDER_DIR));
      const viewerUrl = `${viewerBase(RED.settings.httpNodeRoot)}/${encodeURIComponent(job.id)}`;
      updateJob(job.dir, (r) => {
        r.timestamps.rendered = new Date().toISOString();
        r.counts.renderSnapshots = 4;
      });
      const summary: RenderSummary = { dir: insideDir(job.dir, RENDER_DIR), snapshots: result.files, viewerUrl, centre: result.centre, lesion: result.lesion };
      Object.assign(msg, { payload: result.montage, render: summary });
      node.status({ fill: 'green', shape: 'dot', text: RED._('clara-render-register.status.viewer', { url: viewerUrl }) });
      // A status cannot be clicked: the editor (clara-render-register.html) shows this as a notification
      // with the viewer link, and keeps it for the node's edit dialog.
      RED.comms.publish(VIEWER_LINK_TOPIC, { node: node.id, job: job.id, url: viewerUrl }, false);
    }

    async function post(msg: NodeMessageInFlow, job: JobRef, publishDir: string, url: URL): Promise<void> {
      const meta = readPublishMeta(publishDir);
      const names = publishedFiles(publishDir, meta);
      const readJson = (name: string): unknown => (name && names.includes(name) ? JSON.parse(readFileSync(insideDir(publishDir, name), 'utf8')) : null);
      const files = names.map((name) => {
        const data = readFileSync(insideDir(publishDir, name));
        return { name, size: data.length, base64: data.toString('base64') };
      });
      const body: RenderServerPost = { job: { id: job.id, studyInstanceUID: job.studyInstanceUID }, meta: readJson('config.meta'), settings: readJson(meta.settings), files };
      const text = JSON.stringify(body);
      node.status({ fill: 'blue', shape: 'dot', text: RED._('clara-render-register.status.posting', { files: files.length, host: url.host }) });
      let res: Response;
      try {
        res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: text, signal: AbortSignal.timeout(settings!.timeoutMs) });
      } catch (err) {
        const e = err as Error & { cause?: { code?: string; message?: string } };
        if (e.name === 'TimeoutError') throw new Error(`render server ${url.origin} did not answer within ${settings!.timeoutMs / 1000} s`);
        throw new Error(`render server ${url.origin} cannot be reached: ${e.cause?.code ?? e.cause?.message ?? e.message}`);
      }
      const answer = await res.text();
      if (!res.ok) throw new Error(`render server ${url.origin} answered ${res.status} ${res.statusText}: ${answer.slice(0, 200)}`);
      let response: unknown = answer.slice(0, 4096);
      try {
        response = JSON.parse(answer);
      } catch {
        // not JSON: the text (cut short) is what the server said
      }
      updateJob(job.dir, (r) => {
        r.timestamps.rendered = new Date().toISOString();
      });
      const summary: RenderServerSummary = { url: url.href, status: res.status, files: names, bytes: Buffer.byteLength(text), response };
      Object.assign(msg, { render: summary });
      node.status({ fill: 'green', shape: 'dot', text: RED._('clara-render-register.status.posted', { host: url.host, status: res.status }) });
    }

    async function registerOne(msg: NodeMessageInFlow, send: SendFunction): Promise<void> {
      const job = jobRefOf(msg as { job?: unknown });
      try {
        if (configError || !settings) throw new Error(configError ?? 'not configured');
        const publishDir = messagePath(msg, 'inference', 'publishDir') ?? join(job.dir, PUBLISH_DIR);
        if (settings.mode === 'render-server') await post(msg, job, publishDir, settings.url!);
        else await viewer(msg, job, publishDir);
      } catch (err) {
        const message = (err as Error).message;
        recordJobError(job.dir, STAGE, message);
        throw new Error(`job ${job.id}: ${message}`);
      }
      send(msg);
    }

    if (settings?.mode === 'viewer') prepareStageThreadSoon(node, 'renderPublished');
    workJobsInOrder(node, { type: TYPE, translate: RED._, work: registerOne });
  }

  RED.nodes.registerType(TYPE, ClaraRenderRegisterNode);
};
