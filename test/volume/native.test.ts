import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeFrames, readDicomHeader } from '../../lib/dicom';
import { writePhantomStudy } from '../../lib/phantom';
import { fileIndexOf, nativeLayout, nativeSlice } from '../../lib/volume/native';
import { readNifti } from '../../lib/volume/nifti';
import { type SeriesImagesFile, parseStudy } from '../../lib/volume/parse';
import { scratchDir } from '../support/tools';

describe('lib/volume native stack layout: a parser volume back to its DICOM slices', function () {
  this.timeout(60000);
  const scratch = scratchDir('native-layout');
  after(() => scratch.cleanup());

  it('gives, for every series of the phantom (axial, oblique 3D reordered, coronal, sagittal), each slice exactly as its instance stores it', async () => {
    writePhantomStudy(join(scratch.dir, 'study'), { size: 40, slices: 12, seed: 3 });
    await parseStudy(join(scratch.dir, 'study', 'dicom'), join(scratch.dir, 'parsed'), { format: 'nifti' });
    const seriesImages = JSON.parse(readFileSync(join(scratch.dir, 'parsed', 'series-images.json'), 'utf8')) as SeriesImagesFile;
    const files = new Map<string, string>();
    const metadata = JSON.parse(readFileSync(join(scratch.dir, 'parsed', 'dicom-metadata.json'), 'utf8')) as { studies: Array<{ series: Array<{ instances: Array<{ SOPInstanceUID: string; file: string }> }> }> };
    for (const s of metadata.studies[0].series) for (const i of s.instances) files.set(i.SOPInstanceUID, join(scratch.dir, 'study', 'dicom', i.file));
    let checked = 0;
    const axesSeen = new Set<string>();
    for (const entry of Object.values(seriesImages)) {
      for (const stack of entry.stacks ?? [entry]) {
        const volume = readNifti(join(scratch.dir, 'parsed', stack.image));
        const layout = nativeLayout(stack);
        axesSeen.add(stack.axes.join(' '));
        assert.equal(layout.slices, stack.slices.length);
        for (const [s, source] of stack.slices.entries()) {
          const path = files.get(source.sopInstanceUID)!;
          const header = readDicomHeader(path);
          const [frame] = await decodeFrames(path, header);
          const Cells = volume.data.constructor as Int16ArrayConstructor;
          const stored = new Cells(frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.byteLength));
          const ours = nativeSlice(layout, volume.data, s);
          assert.equal(ours.length, stored.length);
          assert.deepEqual(Array.from(ours), Array.from(stored), `${entry.SeriesDescription} slice ${s}`);
          checked++;
        }
      }
    }
    assert.ok(checked >= 40, `${checked} slices`);
    // The phantom covers bottom-up rows and a permuted 3D acquisition, not just the identity.
    assert.ok(axesSeen.size >= 2, [...axesSeen].join(' | '));
    assert.ok([...axesSeen].some((a) => a.includes('-row')));
  });

  it('maps native coordinates to file indices, and refuses malformed axes', () => {
    const layout = nativeLayout({ axes: ['+column', '-row', '+slice'], dims: [4, 3, 2] });
    assert.equal(fileIndexOf(layout, 0, 0, 0), 2 * 4);
    assert.equal(fileIndexOf(layout, 3, 2, 1), 12 + 3);
    const permuted = nativeLayout({ axes: ['-slice', '+column', '+row'], dims: [2, 4, 3] });
    assert.deepEqual([permuted.columns, permuted.rows, permuted.slices], [4, 3, 2]);
    assert.equal(fileIndexOf(permuted, 1, 2, 0), (2 * 4 + 1) * 2 + 1);
    assert.throws(() => nativeLayout({ axes: ['+column', '+column', '+slice'], dims: [1, 1, 1] }), /name column twice/);
    assert.throws(() => nativeLayout({ axes: ['+x', '+row', '+slice'], dims: [1, 1, 1] }), /not ±column/);
  });
});
