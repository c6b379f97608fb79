import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publishedFiles, readPublishMeta, renderPublished } from '../../lib/render/publish';
import { sliceImages, writeSnapshots } from '../../lib/render/snapshot';
import { writeNifti } from '../../lib/volume/nifti';
import type { Matrix4, Volume } from '../../lib/volume/types';
import { decodePng, pixel } from './helpers';

// An LPS-stored grid (i runs to the left, j to the posterior), anisotropic: the snapshot must turn it to RAS.
const DIMS: [number, number, number] = [32, 40, 16];
const AFFINE: Matrix4 = [[-2, 0, 0, 30], [0, -1.5, 0, 40], [0, 0, 3, -10], [0, 0, 0, 1]];
const LESION = [10, 20, 8]; // voxel of the stored grid

function phantom(): { volume: Volume; mask: Volume } {
  const count = DIMS[0] * DIMS[1] * DIMS[2];
  const image = new Int16Array(count);
  const labels = new Uint8Array(count);
  for (let k = 0, v = 0; k < DIMS[2]; k++) for (let j = 0; j < DIMS[1]; j++) for (let i = 0; i < DIMS[0]; i++, v++) {
    // A zero border (air) around tissue graded 1…200, so the window comes from the non-zero voxels only.
    if (i > 0 && j > 0 && i < DIMS[0] - 1 && j < DIMS[1] - 1) image[v] = 1 + ((i * 7 + j * 3 + k) % 200);
    if (Math.hypot(i - LESION[0], j - LESION[1], k - LESION[2]) <= 2.5) labels[v] = 1;
  }
  return {
    volume: { dims: DIMS, type: 'int16', data: image, affine: AFFINE },
    mask: { dims: DIMS, type: 'uint8', data: labels, affine: AFFINE },
  };
}

describe('render/snapshot', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'clara-snap-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('cuts through the lesion centroid on the RAS-oriented grid', () => {
    const { volume, mask } = phantom();
    const s = sliceImages(volume, mask);
    assert.equal(s.lesion, true);
    // i' = 31 − 10 (x flipped), j' = 39 − 20 (y flipped), k unchanged.
    assert.deepEqual(s.centre, [21, 19, 8]);
    assert.ok(s.labelCounts['1'] > 50);
    assert.ok(s.window[0] >= 1 && s.window[0] <= 5 && s.window[1] >= 195 && s.window[1] <= 200, `window ${s.window}`);
    assert.deepEqual([s.images.axial.width, s.images.axial.height], [32, 40]);
    assert.deepEqual([s.images.coronal.width, s.images.coronal.height], [32, 16]);
    assert.deepEqual([s.images.sagittal.width, s.images.sagittal.height], [40, 16]);
  });

  it('writes PNGs with the mask in red (alpha 0.5) at the lesion and plain grey elsewhere', () => {
    const { volume, mask } = phantom();
    const out = join(dir, 'render');
    const r = writeSnapshots(volume, mask, out);
    // Where the lesion lands in each view (world x → column; anterior up on axial, superior up elsewhere;
    // anterior to the right on sagittal): worked out from the world position, not from the code.
    const at: Record<string, [number, number]> = { axial: [21, 20], coronal: [21, 7], sagittal: [19, 7] };
    for (const [plane, [x, y]] of Object.entries(at)) {
      const png = decodePng(r.files[plane as 'axial']);
      const [red, green, blue] = pixel(png, x, y);
      assert.ok(red >= 128 && green === blue && red > green, `${plane} lesion pixel ${[red, green, blue]}`);
      // Far from the lesion: grey (R = G = B).
      const far = pixel(png, 2, 2);
      assert.ok(far[0] === far[1] && far[1] === far[2], `${plane} background ${far}`);
    }
    const m = decodePng(r.files.montage);
    assert.deepEqual([m.width, m.height], [32 + 4 + 32 + 4 + 40, 40]);
    assert.ok(r.montage.length < 300_000);
  });

  it('goes through the volume centre when the mask is empty or absent', () => {
    const { volume, mask } = phantom();
    mask.data.fill(0);
    const s = sliceImages(volume, mask);
    assert.equal(s.lesion, false);
    assert.deepEqual(s.centre, [16, 20, 8]);
    assert.deepEqual(sliceImages(volume, undefined).centre, [16, 20, 8]);
  });

  it('renders a publish folder from its config.meta (.nii.gz) and lists only the files it names', () => {
    const { volume, mask } = phantom();
    const pub = join(dir, 'publish');
    const uid = '1.2.3.4';
    const render = join(dir, 'render2');
    mkdirSync(pub, { recursive: true });
    writeNifti(join(pub, `${uid}.nii.gz`), volume);
    writeNifti(join(pub, `${uid}.output.nii.gz`), mask);
    writeFileSync(join(pub, 'config.meta'), JSON.stringify({ name: 'm', density: `${uid}.nii.gz`, settings: 'config_render.json', seg_masks: [`${uid}.output.nii.gz`] }));
    writeFileSync(join(pub, 'config_render.json'), '{}');
    writeFileSync(join(pub, 'unlisted.txt'), 'x');
    const r = renderPublished(pub, render);
    assert.deepEqual(r.centre, [21, 19, 8]);
    assert.deepEqual(publishedFiles(pub).sort(), ['1.2.3.4.nii.gz', '1.2.3.4.output.nii.gz', 'config.meta', 'config_render.json']);
    writeFileSync(join(pub, 'config.meta'), JSON.stringify({ density: '../../etc/passwd', seg_masks: [] }));
    assert.throws(() => publishedFiles(pub, readPublishMeta(pub)), /escapes/);
  });
});
