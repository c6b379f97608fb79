import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { writePhantomStudy } from '../../lib/phantom';
import { parseSegmentDefinitions, writeSegmentation } from '../../lib/seg';
import { readNifti } from '../../lib/volume/nifti';
import { readSourceSeries } from '../../lib/volume/source';
import { type OrthancInstance, startOrthanc } from '../support/orthanc';
import { runTool, scratchDir } from '../support/tools';

interface OrthancStudy {
  MainDicomTags: { StudyInstanceUID: string };
  Series: string[];
}
interface OrthancSeries {
  MainDicomTags: { Modality: string; SeriesInstanceUID: string; SeriesDescription?: string };
  Instances: string[];
  ParentStudy: string;
}

describe('lib/seg: Orthanc (a real PACS, on loopback) accepts our SEG over C-STORE into the source study', function () {
  this.timeout(300000);
  const scratch = scratchDir('seg-orthanc');
  let orthanc: OrthancInstance | undefined;
  after(async () => {
    await orthanc?.stop();
    scratch.cleanup();
  });

  it('stores the T1c series and its SEG with storescu; the SEG is a SEG series of the same study, its tags intact', async () => {
    const phantomDir = join(scratch.dir, 'phantom');
    const study = writePhantomStudy(phantomDir, { size: 48, slices: 24, seed: 6 });
    const target = study.series.find((s) => s.isTarget)!;
    const sourceDir = join(phantomDir, target.dir);
    const source = readSourceSeries(sourceDir);
    const result = writeSegmentation({
      mask: readNifti(join(phantomDir, study.maskPath)),
      source,
      segments: parseSegmentDefinitions('["Tumor-seg"]'),
      options: { outDir: join(scratch.dir, 'seg'), algorithm: { name: 'brain-tumor-tc', version: '1' }, seriesDescription: 'AI Segmentation' },
    });
    assert.ok(!result.empty);
    orthanc = await startOrthanc();
    // -R: propose exactly the SOP classes of the files; storescu's default list leaves out Segmentation Storage.
    const files = [...readdirSync(sourceDir).map((f) => join(sourceDir, f)), result.file];
    runTool('storescu', ['-R', '-aet', orthanc.callingAETs[0], '-aec', orthanc.aet, '127.0.0.1', String(orthanc.dicomPort), ...files], { TCP_NODELAY: '1' });

    const studies = await orthanc.rest<string[]>('/studies');
    assert.equal(studies.length, 1, 'one study: the SEG went into the source study');
    const stored = await orthanc.rest<OrthancStudy>(`/studies/${studies[0]}`);
    assert.equal(stored.MainDicomTags.StudyInstanceUID, study.studyInstanceUID);
    const series = await Promise.all(stored.Series.map((id) => orthanc!.rest<OrthancSeries>(`/series/${id}`)));
    const seg = series.find((s) => s.MainDicomTags.Modality === 'SEG');
    const mr = series.find((s) => s.MainDicomTags.Modality === 'MR');
    assert.ok(seg && mr, `series: ${series.map((s) => s.MainDicomTags.Modality).join(', ')}`);
    assert.equal(mr.Instances.length, source.slices.length);
    assert.equal(seg.MainDicomTags.SeriesInstanceUID, result.seriesInstanceUID);
    assert.equal(seg.MainDicomTags.SeriesDescription, 'AI Segmentation');
    assert.equal(seg.Instances.length, 1);
    const tags = await orthanc.rest<Record<string, unknown>>(`/instances/${seg.Instances[0]}/tags?simplify`);
    assert.equal(tags.SOPClassUID, '1.2.840.10008.5.1.4.1.1.66.4');
    assert.equal(tags.SOPInstanceUID, result.sopInstanceUID);
    assert.equal(tags.FrameOfReferenceUID, study.frameOfReferenceUID);
    assert.equal(tags.SegmentationType, 'BINARY');
    assert.equal(Number(tags.NumberOfFrames), result.frames);
    const segments = tags.SegmentSequence as Array<{ SegmentLabel: string; SegmentAlgorithmType: string }>;
    assert.deepEqual(segments.map((s) => [s.SegmentLabel, s.SegmentAlgorithmType]), [['Tumor-seg', 'AUTOMATIC']]);
    const referenced = tags.ReferencedSeriesSequence as Array<{ SeriesInstanceUID: string }>;
    assert.equal(referenced[0].SeriesInstanceUID, target.seriesInstanceUID);
  });
});
