import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DicomParseError, SopClass, Tag, TransferSyntax, decodeFrames, encodePart10, formatDecimalString, generateUid,
  isValidUid, parseDicom, readDicomHeader, writeDicomFile, type WriteDataset,
} from '../../lib/dicom';
import { runTool, scratchDir } from '../support/tools';

/** A 16-bit MR slice with a nested sequence, private data and a value pattern that shows byte-order mistakes. */
function sampleInstance(rows = 5, columns = 7, signed = false): { dataset: WriteDataset; pixels: Int16Array | Uint16Array } {
  const pixels = signed ? new Int16Array(rows * columns) : new Uint16Array(rows * columns);
  for (let i = 0; i < pixels.length; i++) pixels[i] = signed ? (i * 397) % 4000 - 2000 : (i * 397) % 4096;
  const dataset: WriteDataset = {
    SOPClassUID: SopClass.MrImageStorage,
    SOPInstanceUID: generateUid(),
    StudyInstanceUID: generateUid(),
    SeriesInstanceUID: generateUid(),
    Modality: 'MR',
    PatientName: 'Müller^Jörg',
    SpecificCharacterSet: 'ISO_IR 192',
    ImageType: ['ORIGINAL', 'PRIMARY', 'M', 'ND'],
    ImagePositionPatient: [-120.5, 33.25, 7],
    ImageOrientationPatient: [1, 0, 0, 0, 0.98480775301, -0.17364817766],
    PixelSpacing: [0.9375, 0.9375],
    RescaleSlope: 2,
    RescaleIntercept: -1024,
    ReferencedImageSequence: [
      { ReferencedSOPClassUID: SopClass.MrImageStorage, ReferencedSOPInstanceUID: '1.2.3.4', PurposeOfReferenceCodeSequence: [{ CodeValue: '121311', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Localizer' }] },
      { ReferencedSOPClassUID: SopClass.MrImageStorage, ReferencedSOPInstanceUID: '1.2.3.5' },
    ],
    '(0029,0010)': { vr: 'LO', value: 'SIEMENS CSA HEADER' },
    '(0029,1010)': { vr: 'OB', value: new Uint8Array([1, 2, 3, 4, 5]) },
    Rows: rows,
    Columns: columns,
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    BitsAllocated: 16,
    BitsStored: signed ? 16 : 12,
    HighBit: signed ? 15 : 11,
    PixelRepresentation: signed ? 1 : 0,
    PixelData: { vr: 'OW', value: new Uint8Array(pixels.buffer) },
  };
  return { dataset, pixels };
}

function asInt16(frame: Buffer): Int16Array {
  return new Int16Array(frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.length));
}

describe('lib/dicom', () => {
  let scratch: ReturnType<typeof scratchDir>;
  before(() => {
    scratch = scratchDir('dicom');
  });
  after(() => scratch.cleanup());

  it('writes Part 10 files that dcmtk reads back attribute for attribute', () => {
    const { dataset } = sampleInstance();
    const path = join(scratch.dir, 'written.dcm');
    writeDicomFile(path, dataset);
    const dump = runTool('dcmdump', ['+U8', path]);
    assert.match(dump, /\(0002,0010\) UI =LittleEndianExplicit/);
    assert.match(dump, /\(0010,0010\) PN \[Müller\^Jörg\]/);
    assert.match(dump, /\(0020,0037\) DS \[1\\0\\0\\0\\0\.98480775301\\-0\.17364817766\]/);
    assert.match(dump, /\(0008,1140\) SQ .*\n.*\n.*\(0008,1150\) UI =MRImageStorage/);
    assert.match(dump, /\(0029,1010\) OB 01\\02\\03\\04\\05\\00/);
    assert.match(dump, /\(7fe0,0010\) OW /);
  });

  for (const [name, args] of [
    ['implicit VR little endian', ['+ti']],
    ['explicit VR big endian', ['+tb']],
    ['deflated explicit VR little endian', ['+td']],
  ] as const) {
    it(`reads ${name} (converted by dcmconv) with the same values and pixels`, async () => {
      const { dataset, pixels } = sampleInstance(6, 9, true);
      const source = join(scratch.dir, `src-${args[0]}.dcm`);
      const converted = join(scratch.dir, `conv-${args[0]}.dcm`);
      writeDicomFile(source, dataset);
      runTool('dcmconv', [...args, source, converted]);
      const file = readDicomHeader(converted);
      assert.notEqual(file.transferSyntaxUID, TransferSyntax.ExplicitVRLittleEndian);
      assert.equal(file.dataset.string(Tag.PatientName), 'Müller^Jörg');
      assert.deepEqual(file.dataset.numbers(Tag.ImagePositionPatient), [-120.5, 33.25, 7]);
      assert.equal(file.dataset.number(Tag.Rows), 6);
      assert.equal(file.dataset.number(Tag.RescaleIntercept), -1024);
      assert.equal(file.dataset.sequence(0x00081140).length, 2);
      assert.equal(file.dataset.sequence(0x00081140)[0].sequence(0x0040a170)[0].string(0x00080100), '121311');
      const [frame] = await decodeFrames(converted, file);
      assert.deepEqual(asInt16(frame), pixels);
    });
  }

  for (const [name, args] of [
    ['RLE lossless', ['--rle']],
    ['JPEG-LS lossless', ['--jpegls']],
    ['JPEG 2000 lossless', ['--j2k']],
    ['JPEG lossless', ['--jpeg', '--lossless']],
  ] as const) {
    it(`decodes ${name} pixel data (compressed by gdcmconv) to the original values`, async () => {
      const { dataset, pixels } = sampleInstance(33, 17, true);
      const source = join(scratch.dir, `src-${args[0]}.dcm`);
      const converted = join(scratch.dir, `conv-${args[0]}.dcm`);
      writeDicomFile(source, dataset);
      runTool('gdcmconv', [...args, source, converted]);
      const file = readDicomHeader(converted);
      assert.ok(file.pixelData?.encapsulated, 'pixel data is encapsulated');
      const [frame] = await decodeFrames(converted, file);
      assert.deepEqual(asInt16(frame), pixels);
    });
  }

  it('reads the header lazily: the pixel data is located, not loaded', () => {
    const { dataset } = sampleInstance(512, 512);
    const path = join(scratch.dir, 'large.dcm');
    writeDicomFile(path, dataset);
    const file = readDicomHeader(path);
    assert.equal(file.pixelData?.length, 512 * 512 * 2);
    const element = file.dataset.get(Tag.PixelData);
    assert.equal(element?.bytes, undefined);
  });

  it('reports a truncated file with where it ends', () => {
    const { dataset } = sampleInstance(64, 64);
    const whole = encodePart10(dataset);
    const path = join(scratch.dir, 'truncated.dcm');
    writeFileSync(path, whole.subarray(0, whole.length - 100));
    assert.throws(() => readDicomHeader(path), (err: Error) => err instanceof DicomParseError && /truncated: pixel data declares 8192 bytes/.test(err.message));
    writeFileSync(path, whole.subarray(0, 300));
    assert.throws(() => readDicomHeader(path), (err: Error) => err instanceof DicomParseError && /truncated/.test(err.message));
  });

  it('rejects a file that is not DICOM with a clear reason', () => {
    const path = join(scratch.dir, 'text.dcm');
    writeFileSync(path, 'this is a plain text file, not an image\n'.repeat(10));
    assert.throws(() => readDicomHeader(path), /not DICOM/);
  });

  it('reads a data set without preamble and meta header, guessing its encoding', () => {
    const { dataset } = sampleInstance();
    const source = join(scratch.dir, 'with-meta.dcm');
    const bare = join(scratch.dir, 'bare.dcm');
    writeDicomFile(source, dataset);
    runTool('dcmconv', ['-F', '+ti', source, bare]);
    const file = parseDicom(readFileSync(bare), { complete: true });
    assert.equal(file.hasPart10Header, false);
    assert.equal(file.transferSyntaxUID, TransferSyntax.ImplicitVRLittleEndian);
    assert.equal(file.dataset.string(Tag.Modality), 'MR');
  });

  it('survives a sequence nested beyond any sane depth without exhausting the stack', () => {
    let nested: WriteDataset = { CodeValue: 'x' };
    for (let i = 0; i < 200; i++) nested = { ReferencedImageSequence: [nested] };
    const { dataset } = sampleInstance();
    const buf = encodePart10({ ...dataset, ...nested });
    assert.throws(() => parseDicom(buf, { complete: true }), /nested deeper than/);
  });

  it('formats decimal strings in at most 16 characters', () => {
    for (const value of [1 / 3, -123456.7890123, 1e-20, 98765432109876.5, 0.98480775301, -0]) {
      const text = formatDecimalString(value);
      assert.ok(text.length <= 16, `${value} -> ${text}`);
      assert.ok(Math.abs(Number(text) - value) <= Math.abs(value) * 1e-9 + 1e-300, `${value} -> ${text}`);
    }
  });

  it('validates and generates UIDs', () => {
    assert.ok(isValidUid('1.2.840.10008.5.1.4.1.1.4'));
    for (const bad of ['', '1.2.03', '../../etc/passwd', '1.2.3/..', '1.2.3.', '.1.2', '1.2a', '1'.repeat(65)]) {
      assert.equal(isValidUid(bad), false, bad);
    }
    const generated = new Set(Array.from({ length: 1000 }, () => generateUid('1.2.826.0.1.3680043.10.1234')));
    assert.equal(generated.size, 1000);
    for (const uid of generated) assert.ok(isValidUid(uid) && uid.startsWith('1.2.826.0.1.3680043.10.1234.'), uid);
    assert.ok(isValidUid(generateUid()));
  });
});
