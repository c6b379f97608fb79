import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { log as dimseLog } from 'dcmjs-dimse';
import { sendFiles } from '../../lib/dimse/scu';
import { writePhantomStudy } from '../../lib/phantom';
import { parseLabels } from '../../lib/rtstruct/labels';
import { writeStructureSet } from '../../lib/rtstruct/structure-set';
import { TransferSyntax } from '../../lib/dicom/uids';
import { readNifti } from '../../lib/volume/nifti';
import { readSourceSeries } from '../../lib/volume/source';
import type { Volume } from '../../lib/volume/types';
import { type OrthancInstance, hasOrthanc, startOrthanc } from '../support/orthanc';
import { hasTool, runTool, scratchDir } from '../support/tools';
import { readWithPydicom, writeSyntheticSeries } from './helpers';

interface OrthancSeries {
  ID: string;
  ParentStudy: string;
  Instances: string[];
  MainDicomTags: { Modality?: string; SeriesInstanceUID?: string };
}

/** The file Orthanc stored for an instance, as bytes. */
function download(port: number, id: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: `/instances/${id}/file` }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`HTTP ${res.statusCode}`))));
    }).on('error', reject);
  });
}

describe('RT Structure Sets stored into Orthanc over C-STORE', function () {
  this.timeout(180000);
  const scratch = scratchDir('rtstruct-orthanc');
  let orthanc: OrthancInstance | undefined;

  before(async function () {
    assert.ok(hasOrthanc() && hasTool('storescu'), 'Orthanc and dcmtk (Debian) are needed: .ci/run installs them');
    // dcmjs-dimse logs every PDU to the console unless told otherwise (lib/dimse/scp does the same).
    dimseLog.setLevel('silent');
    orthanc = await startOrthanc();
  });
  after(async () => {
    await orthanc?.stop();
    scratch.cleanup();
  });

  /**
   * Sends the source series and then the structure set; returns Orthanc's series. `implicitOnly` sends the
   * structure set with dcmtk's storescu proposing Implicit VR Little Endian alone, so the file goes as written:
   * dcmjs-dimse would transcode it to Explicit VR when the peer prefers that, turning a ContourData past 64 KiB
   * into VR UN, which pydicom and dcmtk do not read back as numbers (docs/rtstruct.md).
   */
  async function store(sourceDir: string, rtstruct: string, implicitOnly = false): Promise<{ studies: string[]; series: OrthancSeries[] }> {
    const target = { host: '127.0.0.1', port: orthanc!.dicomPort, calledAE: orthanc!.aet, callingAE: 'CLARA-RTSTRUCT' };
    const images = await sendFiles(readdirSync(sourceDir).map((f) => join(sourceDir, f)), target);
    assert.deepEqual(images.failed, []);
    if (implicitOnly) {
      runTool('storescu', ['-xi', '-aet', target.callingAE, '-aec', target.calledAE, target.host, String(target.port), rtstruct]);
    } else {
      const sent = await sendFiles([rtstruct], target);
      assert.deepEqual(sent.failed, [], 'Orthanc answered the RTSTRUCT C-STORE with success');
    }
    const studies = await orthanc!.rest<string[]>('/studies');
    const series = await Promise.all((await orthanc!.rest<string[]>('/series')).map((id) => orthanc!.rest<OrthancSeries>(`/series/${id}`)));
    return { studies, series };
  }

  it('accepts our structure set into the source study, as a new RTSTRUCT series (Explicit and Implicit VR)', async () => {
    const study = writePhantomStudy(join(scratch.dir, 'study'), { size: 64, slices: 32, seed: 8 });
    const targetDir = join(scratch.dir, 'study', study.series.find((s) => s.isTarget)!.dir);
    const mask = readNifti(join(scratch.dir, 'study', study.maskPath));
    const out = join(scratch.dir, 'out');
    mkdirSync(out);
    const result = writeStructureSet(mask, readSourceSeries(targetDir), out, { labels: parseLabels('["Tumor-seg"]') });
    assert.ok(result.written);
    const { studies, series } = await store(targetDir, result.file);
    assert.equal(studies.length, 1, 'one study: the structure set went into the source study');
    const ours = series.find((s) => s.MainDicomTags.SeriesInstanceUID === result.seriesInstanceUID);
    assert.ok(ours, `Orthanc has the RTSTRUCT series (${series.map((s) => s.MainDicomTags.Modality).join(', ')})`);
    assert.equal(ours.MainDicomTags.Modality, 'RTSTRUCT');
    assert.equal(ours.ParentStudy, studies[0]);
    assert.equal(ours.Instances.length, 1);
    const tags = await orthanc!.rest<Record<string, string>>(`/instances/${ours.Instances[0]}/simplified-tags`);
    assert.equal(tags.SOPInstanceUID, result.sopInstanceUID);
    assert.equal(tags.StudyInstanceUID, study.studyInstanceUID);
    assert.equal(tags.SOPClassUID, '1.2.840.10008.5.1.4.1.1.481.3');

    // A structure set with a contour past 64 KiB is Implicit VR Little Endian: Orthanc takes that too.
    const fringe = writeSyntheticSeries(join(scratch.dir, 'fringe'), {
      columns: 512, rows: 512, slices: 1, pixelSpacing: [0.7, 0.7], rowCosine: [1, 0, 0], columnCosine: [0, 1, 0], sliceStep: 3, origin: [-178.65, -190.15, -30.3], seed: 21,
    });
    const zigzag: Volume = { dims: fringe.dims, type: 'uint8', data: new Uint8Array(512 * 512), affine: fringe.affine };
    for (let n = 0; n < zigzag.data.length; n++) {
      const [x, y] = [n % 512, Math.floor(n / 512)];
      if (y >= 10 + (x % 2) * 2 && y <= 500 - (x % 2) * 2 && x >= 10 + (y % 2) * 2 && x <= 500 - (y % 2) * 2) zigzag.data[n] = 1;
    }
    const big = writeStructureSet(zigzag, readSourceSeries(fringe.dir), out, { labels: parseLabels('["Fringe"]') });
    assert.ok(big.written);
    assert.equal(big.transferSyntaxUID, TransferSyntax.ImplicitVRLittleEndian);
    const after = await store(fringe.dir, big.file, true);
    const bigSeries = after.series.find((s) => s.MainDicomTags.SeriesInstanceUID === big.seriesInstanceUID);
    assert.equal(bigSeries?.MainDicomTags.Modality, 'RTSTRUCT');
    const bigTags = await orthanc!.rest<Record<string, string>>(`/instances/${bigSeries!.Instances[0]}/simplified-tags`);
    assert.equal(bigTags.StudyInstanceUID, fringe.studyInstanceUID);
    // What Orthanc keeps holds every point.
    const stored = join(scratch.dir, 'stored.dcm');
    writeFileSync(stored, await download(orthanc!.httpPort, bigSeries!.Instances[0]));
    const view = readWithPydicom(stored);
    assert.ok(view.pointsMatchCounts);
    assert.deepEqual(view.rois.map((r) => r.points), [big.rois[0].points]);
  });
});
