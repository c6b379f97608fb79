/**
 * The built-in viewer of clara-render-register, served on Node-RED's httpNode app so that httpNodeAuth
 * (and httpNodeMiddleware, httpNodeCors) protect it exactly as they protect http-in flows: red.js puts
 * that middleware in front of every httpNode route. Only jobs of registered work roots are shown, and
 * only the files their config.meta names are served, each path checked with lib/job insideDir.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { insideDir, JobStore } from '../lib/job';
import { publishedFiles, readPublishMeta } from '../lib/render/publish';
import { listRegisteredJobs, PUBLISH_DIR, registeredJob, RENDER_DIR, type RegisteredJob } from '../lib/render/registry';
import { LABEL_COLOURS } from '../lib/render/snapshot';

export const VIEWER_PATH = '/clara-dicom/viewer';
const SNAPSHOT_NAMES = new Set(['axial.png', 'coronal.png', 'sagittal.png', 'montage.png']);

/** The parts of express's request and response the routes use (Node-RED ships express; no types here). */
export interface ViewerRequest {
  params: Record<string, string>;
}
export interface ViewerResponse {
  status(code: number): ViewerResponse;
  type(type: string): ViewerResponse;
  set(field: string, value: string): ViewerResponse;
  send(body: string | Buffer): void;
  sendFile(path: string, options: { dotfiles: 'allow' | 'deny' }, done: (err?: Error) => void): void;
}
export interface HttpApp {
  get(path: string, handler: (req: ViewerRequest, res: ViewerResponse) => void): void;
}

interface ViewerState {
  roots: Set<string>;
}
// One viewer per httpNode app: several render nodes (and redeploys) share the routes, registered once.
const viewers = new WeakMap<object, ViewerState>();

/** Where niivue's browser bundle (UMD, global `niivue`) lies: its package exports only ESM to require. */
export function niivueBundlePath(): string {
  for (const base of require.resolve.paths('@niivue/niivue') ?? []) {
    const file = join(base, '@niivue', 'niivue', 'dist', 'niivue.umd.js');
    if (existsSync(file)) return file;
  }
  throw new Error('@niivue/niivue is not installed (npm install @niivue/niivue)');
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The job folder of `jobId` in a known root, when it has a publish folder; undefined otherwise. */
function findJob(state: ViewerState, jobId: string): string | undefined {
  for (const root of state.roots) {
    if (!existsSync(root)) continue;
    let dir: string;
    try {
      dir = new JobStore(root).dirOf(jobId);
    } catch {
      return undefined; // an invalid job id is invalid in every root
    }
    if (existsSync(join(dir, 'job.json')) && existsSync(join(dir, PUBLISH_DIR, 'config.meta'))) return dir;
  }
  return undefined;
}

function listPage(jobs: RegisteredJob[]): string {
  const rows = jobs
    .map((j) => `<tr><td><a href="viewer/${encodeURIComponent(j.id)}">${escapeHtml(j.id)}</a></td><td>${escapeHtml(j.patientInitials)}</td><td>${escapeHtml(j.studyDate)}</td><td>${escapeHtml(j.seriesDescription)}</td><td>${escapeHtml(j.model)}</td><td>${escapeHtml(j.state)}</td><td>${j.hasSnapshots ? `<img alt="snapshot" height="64" src="viewer/${encodeURIComponent(j.id)}/snapshots/montage.png">` : ''}</td></tr>`)
    .join('\n');
  return `<!doctype html><html><head><meta charset="utf-8"><title>Clara DICOM viewer</title>
<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}td,th{border-bottom:1px solid #ccc;padding:4px 10px;text-align:left}</style></head>
<body><h1>Clara DICOM results</h1><p><strong>Not for diagnostic use.</strong></p>
<table><thead><tr><th>Job</th><th>Patient</th><th>Study date</th><th>Series</th><th>Model</th><th>State</th><th>Snapshot</th></tr></thead>
<tbody>${rows || '<tr><td colspan="7">No segmented jobs yet.</td></tr>'}</tbody></table></body></html>`;
}

/**
 * The view page: niivue over a WebGL2 canvas, the density volume in grey and the first mask as a label
 * volume (one colour per label, the snapshots' colours), multiplanar with the 3D render as fourth tile.
 */
function viewPage(job: RegisteredJob, density: string, mask: string | undefined): string {
  const base = `${encodeURIComponent(job.id)}/files/`;
  const colours = LABEL_COLOURS.map(([r, g, b]) => [r, g, b]);
  const config = { density: base + encodeURIComponent(density), mask: mask ? base + encodeURIComponent(mask) : null, colours };
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(job.id)} · Clara DICOM viewer</title>
<style>html,body{margin:0;height:100%;background:#111;color:#eee;font-family:sans-serif}header{padding:6px 12px}#gl{width:100%;height:calc(100% - 48px);display:block}a{color:#8cc152}</style></head>
<body><header><a href="../viewer">All jobs</a> · ${escapeHtml(job.id)} · ${escapeHtml(job.patientInitials)} ${escapeHtml(job.studyDate)} ${escapeHtml(job.seriesDescription)} ·
<label>Mask opacity <input id="opacity" type="range" min="0" max="100" value="50"></label> <span id="status">loading…</span> · <strong>Not for diagnostic use.</strong></header>
<canvas id="gl"></canvas>
<script src="niivue.js"></script>
<script>
(async function () {
  var cfg = ${JSON.stringify(config).replace(/</g, '\\u003c')};
  var status = document.getElementById('status');
  try {
    var nv = new niivue.Niivue({ backColor: [0, 0, 0, 1], show3Dcrosshair: true, crosshairColor: [0.6, 0.6, 1, 1], multiplanarShowRender: niivue.SHOW_RENDER.ALWAYS, dragAndDropEnabled: false });
    await nv.attachToCanvas(document.getElementById('gl'));
    var list = [{ url: cfg.density, colormap: 'gray' }];
    if (cfg.mask) list.push({ url: cfg.mask, opacity: 0.5 });
    await nv.loadVolumes(list);
    if (cfg.mask) {
      // A label lookup table: label 0 transparent, label n the colour the snapshots use.
      var maxLabel = 1;
      for (var q = 0; q < nv.volumes[1].img.length; q++) if (nv.volumes[1].img[q] > maxLabel) maxLabel = nv.volumes[1].img[q];
      var lut = { R: [0], G: [0], B: [0], A: [0], I: [0] };
      for (var n = 1; n <= maxLabel; n++) { var c = cfg.colours[(n - 1) % cfg.colours.length]; lut.R.push(c[0]); lut.G.push(c[1]); lut.B.push(c[2]); lut.A.push(255); lut.I.push(n); }
      nv.volumes[1].setColormapLabel(lut);
      // Centre the crosshair on the lesion: the mean position of the labelled voxels.
      var img = nv.volumes[1].img, dims = nv.volumes[1].hdr.dims, sx = 0, sy = 0, sz = 0, count = 0;
      for (var z = 0, v = 0; z < dims[3]; z++) for (var y = 0; y < dims[2]; y++) for (var x = 0; x < dims[1]; x++, v++) if (img[v] > 0) { sx += x; sy += y; sz += z; count++; }
      if (count > 0) {
        // img is in file order, so the file's own affine (hdr.affine, row-major) gives world mm.
        var a = nv.volumes[1].hdr.affine, p = [sx / count, sy / count, sz / count];
        var mm = [0, 1, 2].map(function (r) { return a[r][0] * p[0] + a[r][1] * p[1] + a[r][2] * p[2] + a[r][3]; });
        // true: mm is true world (the file affine), not the orthogonal approximation niivue draws oblique volumes in.
        nv.scene.crosshairPos = nv.mm2frac(mm, 0, true);
      }
      nv.updateGLVolume();
    }
    nv.setSliceType(nv.sliceTypeMultiplanar);
    document.getElementById('opacity').addEventListener('input', function (e) { if (cfg.mask) nv.setOpacity(1, Number(e.target.value) / 100); });
    window.claraViewer = nv;
    status.textContent = 'ready';
    document.body.dataset.ready = 'true';
  } catch (err) {
    status.textContent = 'error: ' + err.message;
    document.body.dataset.error = String(err.message);
  }
})();
</script></body></html>`;
}

/** Adds a work root to the viewer of `app`, installing the routes the first time. */
export function registerViewer(app: HttpApp, workRoot: string, onError: (message: string) => void): void {
  let state = viewers.get(app);
  if (state) {
    state.roots.add(resolve(workRoot));
    return;
  }
  state = { roots: new Set([resolve(workRoot)]) };
  viewers.set(app, state);
  const viewer = state;
  const fail = (res: ViewerResponse, code: number, text: string) => res.status(code).type('text/plain').send(text);
  const guard = (handler: (req: ViewerRequest, res: ViewerResponse) => void) => (req: ViewerRequest, res: ViewerResponse) => {
    try {
      handler(req, res);
    } catch (err) {
      onError((err as Error).message);
      fail(res, 500, 'viewer error');
    }
  };

  app.get(VIEWER_PATH, guard((_req, res) => {
    const jobs = [...viewer.roots].filter((root) => existsSync(root)).flatMap((root) => listRegisteredJobs(root));
    res.type('text/html').set('Cache-Control', 'no-store').send(listPage(jobs));
  }));
  // Before /:jobId: "niivue.js" is no valid job anyway, but the order makes that not matter.
  app.get(`${VIEWER_PATH}/niivue.js`, guard((_req, res) => {
    res.type('application/javascript').set('Cache-Control', 'max-age=3600').send(readFileSync(niivueBundlePath()));
  }));
  app.get(`${VIEWER_PATH}/:jobId`, guard((req, res) => {
    const dir = findJob(viewer, req.params.jobId);
    if (!dir) return fail(res, 404, 'no such job');
    const entry = registeredJob(dir);
    const meta = readPublishMeta(join(dir, PUBLISH_DIR));
    if (!entry) return fail(res, 404, 'no such job');
    res.type('text/html').set('Cache-Control', 'no-store').send(viewPage(entry, meta.density, meta.seg_masks[0]));
  }));
  app.get(`${VIEWER_PATH}/:jobId/files/:name`, guard((req, res) => {
    const dir = findJob(viewer, req.params.jobId);
    if (!dir) return fail(res, 404, 'no such job');
    const publishDir = join(dir, PUBLISH_DIR);
    // Only what config.meta names: a request for anything else in the job (DICOM, job.json) is refused.
    if (!publishedFiles(publishDir).includes(req.params.name)) return fail(res, 404, 'no such file');
    const file = insideDir(publishDir, req.params.name);
    res.set('Cache-Control', 'no-store').type('application/octet-stream').sendFile(file, { dotfiles: 'deny' }, (err) => {
      if (err) onError(`viewer: ${file}: ${err.message}`);
    });
  }));
  app.get(`${VIEWER_PATH}/:jobId/snapshots/:name`, guard((req, res) => {
    const dir = findJob(viewer, req.params.jobId);
    if (!dir || !SNAPSHOT_NAMES.has(req.params.name)) return fail(res, 404, 'no such snapshot');
    const file = insideDir(dir, RENDER_DIR, req.params.name);
    if (!existsSync(file)) return fail(res, 404, 'no such snapshot');
    res.type('image/png').set('Cache-Control', 'no-store').send(readFileSync(file));
  }));
}

/** Test hook: the work roots a viewer lists. */
export function viewerRoots(app: object): string[] {
  return [...(viewers.get(app)?.roots ?? [])];
}
