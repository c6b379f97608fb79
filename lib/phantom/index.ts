import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { SopClass } from '../dicom/uids';
import { type WriteDataset, writeDicomFile, writeJsonAtomic } from '../dicom/writer';
import { writeNifti } from '../volume/nifti';
import type { Matrix4 } from '../volume/types';
import { HeadModel, type Tumor, placeTumor, sampleSlice } from './anatomy';
import { type StackGrid, type Vec3, affineRas, dot, normalOf, slicePosition } from './geometry';
import { type OrientationKind, type SeriesPlan, acquisitionOrder, planSeries } from './protocol';
import { derivedHex, derivedSeed, derivedUid, mixSeed } from './random';

export type { OrientationKind } from './protocol';
export type { Tumor } from './anatomy';

export interface PhantomOptions {
  /** Rows and columns of the target series (default 256); other series scale with it. */
  size?: number;
  /** Slices of the target series (default 160). */
  slices?: number;
  /** Chooses the tumour and the noise; also seeds every UID (default 1). */
  seed?: number;
}

/** One stack of parallel slices in a series (the localizer has three). */
export interface PhantomStack {
  imageOrientationPatient: number[];
  sliceCount: number;
  sliceStepMm: number;
  /** Voxel (column, row, slice ordered along the normal) to RAS+ mm, as a NIfTI sform. */
  affineRas: Matrix4;
  /** SOP Instance UIDs ordered by position along the normal (row × column cosines). */
  sopInstanceUIDs: string[];
}

export interface PhantomSeries {
  seriesInstanceUID: string;
  seriesNumber: number;
  description: string;
  imageType: string[];
  orientationKind: OrientationKind;
  rows: number;
  columns: number;
  instanceCount: number;
  /** In InstanceNumber order, which is acquisition order, not position order. */
  sopInstanceUIDs: string[];
  /** The series folder, relative to the study's output folder. */
  dir: string;
  isTarget: boolean;
  pixelRepresentation: 0 | 1;
  /** null where the files carry no rescale attributes (readers take 1 and 0). */
  rescaleSlope: number | null;
  rescaleIntercept: number | null;
  /** PixelSpacing: [between rows, between columns] in mm. */
  pixelSpacingMm: [number, number];
  stacks: PhantomStack[];
}

/** The manifest of a phantom study, also written to <outDir>/phantom.json. Paths are relative to outDir. */
export interface PhantomStudy {
  seed: number;
  size: number;
  slices: number;
  studyInstanceUID: string;
  frameOfReferenceUID: string;
  studyDescription: string;
  studyDate: string;
  studyTime: string;
  accessionNumber: string;
  patient: { name: string; id: string; birthDate: string; sex: string };
  series: PhantomSeries[];
  targetSeriesInstanceUID: string;
  tumor: Tumor;
  /** The ground-truth tumour-core mask on the target grid (see writePhantomStudy for its layout). */
  maskPath: string;
}

export const PHANTOM_DEFAULTS = { size: 256, slices: 160, seed: 1 } as const;
export const PHANTOM_LIMITS = { size: [16, 1024], slices: [8, 1024] } as const;

const MANUFACTURER = 'Clara DICOM Phantom';
const MODEL = 'Synthetic 3T';
const FIELD_STRENGTH_T = 3;
const LARMOR_MHZ_PER_T = 42.577;
const LOCALIZER_PURPOSE = { CodeValue: '121311', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Localizer' };
const SOURCE_PURPOSE = { CodeValue: '121322', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Source image for image processing operation' };

function checkOption(name: keyof typeof PHANTOM_LIMITS, value: number): void {
  const [min, max] = PHANTOM_LIMITS[name];
  if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`phantom ${name} must be an integer from ${min} to ${max}, not ${value}`);
}

/** DICOM DA and TM from a base date plus seconds, computed in UTC so that the result never depends on the machine. */
function dateTime(base: Date, seconds: number): { date: string; time: string } {
  const t = new Date(base.getTime() + seconds * 1000);
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return {
    date: `${t.getUTCFullYear()}${pad(t.getUTCMonth() + 1)}${pad(t.getUTCDate())}`,
    time: `${pad(t.getUTCHours())}${pad(t.getUTCMinutes())}${pad(t.getUTCSeconds())}.${pad(t.getUTCMilliseconds(), 3)}000`,
  };
}

function ageOn(birth: string, day: string): string {
  const years = Number(day.slice(0, 4)) - Number(birth.slice(0, 4)) - (day.slice(4) < birth.slice(4) ? 1 : 0);
  return `${String(years).padStart(3, '0')}Y`;
}

/** Rounds away floating-point dust (1e-17) so that the header text stays short and stable. */
const tidy = (v: number): number => {
  const r = Math.round(v * 1e12) / 1e12;
  return Object.is(r, -0) ? 0 : r;
};

interface InstanceSlot {
  stackIndex: number;
  /** Slice index along the stack normal. */
  k: number;
  sopInstanceUID: string;
  instanceNumber: number;
}

/**
 * Writes a synthetic brain MR exam of seven series as DICOM (MR Image Storage, Explicit VR Little
 * Endian, 16-bit) under `<outDir>/dicom/<series folder>/<hashed name>.dcm`, the ground-truth tumour
 * core as `<outDir>/ground-truth/tumor-core.nii.gz`, and the manifest as `<outDir>/phantom.json`.
 * The same seed gives byte-identical files; UIDs are derived from it.
 *
 * Ground-truth layout: uint8, 1 inside the tumour core (enhancing rim and necrosis), 0 elsewhere, on
 * the target series grid: i = column, j = row, k = slice index ordered by increasing position along the
 * slice normal (row cosine × column cosine) — so k runs opposite to the target's InstanceNumber. The
 * NIfTI sform (and qform) is the voxel-to-world affine in RAS+ mm: the DICOM LPS position with x and y
 * negated. A mask voxel is 1 exactly where the target image shows rim or necrosis.
 *
 * Memory stays at one slice per series plus the target-sized mask.
 */
export function writePhantomStudy(outDir: string, options: PhantomOptions = {}): PhantomStudy {
  const size = options.size ?? PHANTOM_DEFAULTS.size;
  const slices = options.slices ?? PHANTOM_DEFAULTS.slices;
  const seed = options.seed ?? PHANTOM_DEFAULTS.seed;
  checkOption('size', size);
  checkOption('slices', slices);
  if (!Number.isSafeInteger(seed)) throw new RangeError(`phantom seed must be an integer, not ${seed}`);

  const plans = planSeries(size, slices);
  const target = plans.find((p) => p.isTarget)!;
  const targetGrid = target.stacks[0];
  const tumor = placeTumor(seed, targetGrid);
  const model = new HeadModel(tumor);

  const studyStart = new Date(Date.UTC(2024, 0, 15, 8, 30, 0) + (seed % 365) * 86400000 + (seed % 7) * 3600000);
  const { date: studyDate, time: studyTime } = dateTime(studyStart, 0);
  const birthDate = '19680521';
  const studyInstanceUID = derivedUid(seed, 'study');
  const frameOfReferenceUID = derivedUid(seed, 'frame-of-reference');
  const accessionNumber = `PH${String(seed).padStart(8, '0')}`.slice(-16);
  const patient = { name: 'PHANTOM^BRAIN', id: `PHANTOM-${seed}`.slice(0, 64), birthDate, sex: 'F' };
  const studyDescription = 'MRI Brain w/wo contrast';

  const seriesUid = (plan: SeriesPlan) => derivedUid(seed, 'series', plan.seriesNumber);
  const instanceUid = (plan: SeriesPlan, stackIndex: number, k: number) => derivedUid(seed, 'series', plan.seriesNumber, 'stack', stackIndex, 'slice', k);

  const studyLevel: WriteDataset = {
    SpecificCharacterSet: 'ISO_IR 100',
    SOPClassUID: SopClass.MrImageStorage,
    StudyDate: studyDate,
    StudyTime: studyTime,
    AccessionNumber: accessionNumber,
    Modality: 'MR',
    Manufacturer: MANUFACTURER,
    InstitutionName: 'Phantom General Hospital',
    ReferringPhysicianName: 'REFERRER^RITA',
    StationName: 'PHANTOM3T',
    StudyDescription: studyDescription,
    ManufacturerModelName: MODEL,
    PatientName: patient.name,
    PatientID: patient.id,
    PatientBirthDate: birthDate,
    PatientSex: patient.sex,
    PatientAge: ageOn(birthDate, studyDate),
    PatientSize: 1.68,
    PatientWeight: 64,
    BodyPartExamined: 'BRAIN',
    ImagingFrequency: FIELD_STRENGTH_T * LARMOR_MHZ_PER_T,
    ImagedNucleus: '1H',
    EchoNumbers: 1,
    MagneticFieldStrength: FIELD_STRENGTH_T,
    DeviceSerialNumber: '000001',
    SoftwareVersions: 'clara-dicom phantom 1',
    PatientPosition: 'HFS',
    StudyInstanceUID: studyInstanceUID,
    StudyID: '1',
    FrameOfReferenceUID: frameOfReferenceUID,
    PositionReferenceIndicator: null,
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    BitsAllocated: 16,
  };

  const dicomRoot = join(outDir, 'dicom');
  mkdirSync(dicomRoot, { recursive: true });
  mkdirSync(join(outDir, 'ground-truth'), { recursive: true });

  // The localizer goes first, so that later series can reference the images they were planned on.
  const localizerPlan = plans[0];
  const localizerRefs = [1, 2].map((stackIndex) => ({
    ReferencedSOPClassUID: SopClass.MrImageStorage,
    ReferencedSOPInstanceUID: instanceUid(localizerPlan, stackIndex, 1),
    PurposeOfReferenceCodeSequence: [LOCALIZER_PURPOSE],
  }));
  const targetMiddle = {
    ReferencedSOPClassUID: SopClass.MrImageStorage,
    ReferencedSOPInstanceUID: instanceUid(target, 0, Math.floor(targetGrid.sliceCount / 2)),
    PurposeOfReferenceCodeSequence: [SOURCE_PURPOSE],
  };

  const noiseBase = derivedSeed(seed, 'noise');
  const mask = new Uint8Array(targetGrid.columns * targetGrid.rows * targetGrid.sliceCount);
  const series: PhantomSeries[] = [];
  for (const plan of plans) {
    const seriesInstanceUID = seriesUid(plan);
    const folder = join(dicomRoot, plan.folder);
    // A rerun (perhaps with another seed) must not leave the previous run's instances behind.
    rmSync(folder, { recursive: true, force: true });
    mkdirSync(folder, { recursive: true });
    const { rows, columns, rowSpacing, columnSpacing } = plan.stacks[0];
    const seriesStart = plan.minutesAfterStart * 60;
    const seriesTime = dateTime(studyStart, seriesStart);
    const seq = plan.sequence;
    const { encoding } = plan;
    // Phase encoding runs along the rows (left-right for axial planes), where a reduced field of view
    // shows as fewer columns.
    const phaseSteps = columns;
    const seriesLevel: WriteDataset = {
      ...studyLevel,
      ImageType: plan.imageType,
      SeriesDate: seriesTime.date,
      SeriesTime: seriesTime.time,
      SeriesDescription: plan.description,
      DerivationDescription: plan.derivation,
      ReferencedImageSequence: plan.imageType[0] === 'ORIGINAL' && plan !== localizerPlan ? localizerRefs : undefined,
      SourceImageSequence: plan.derivation ? [targetMiddle] : undefined,
      ContrastBolusAgent: plan.contrastAgent ? 'GADOBUTROL 7.5 ML' : undefined,
      ContrastBolusRoute: plan.contrastAgent ? 'IV' : undefined,
      ScanningSequence: seq.scanningSequence,
      SequenceVariant: seq.sequenceVariant,
      ScanOptions: seq.scanOptions,
      MRAcquisitionType: seq.acquisitionType,
      SequenceName: seq.sequenceName,
      AngioFlag: 'N',
      SliceThickness: tidy(plan.sliceThickness),
      RepetitionTime: seq.repetitionTime,
      EchoTime: seq.echoTime,
      InversionTime: seq.inversionTime,
      NumberOfAverages: seq.averages,
      SpacingBetweenSlices: plan.orientationKind === 'three-plane' ? undefined : tidy(plan.stacks[0].sliceStep),
      NumberOfPhaseEncodingSteps: phaseSteps,
      EchoTrainLength: seq.echoTrainLength,
      PercentSampling: 100,
      PercentPhaseFieldOfView: plan.percentPhaseFov,
      PixelBandwidth: seq.pixelBandwidth,
      ProtocolName: plan.protocolName,
      AcquisitionMatrix: [rows, 0, 0, phaseSteps],
      InPlanePhaseEncodingDirection: 'ROW',
      FlipAngle: seq.flipAngle,
      SeriesInstanceUID: seriesInstanceUID,
      SeriesNumber: plan.seriesNumber,
      AcquisitionNumber: 1,
      Rows: rows,
      Columns: columns,
      PixelSpacing: [tidy(rowSpacing), tidy(columnSpacing)],
      BitsStored: encoding.bitsStored,
      HighBit: encoding.bitsStored - 1,
      PixelRepresentation: encoding.signed ? 1 : 0,
      WindowCenter: plan.window.center,
      WindowWidth: plan.window.width,
      RescaleIntercept: plan.writeRescale ? encoding.intercept : undefined,
      RescaleSlope: plan.writeRescale ? encoding.slope : undefined,
    };

    const slots: InstanceSlot[] = [];
    plan.stacks.forEach((grid, stackIndex) => {
      for (const k of acquisitionOrder(grid.sliceCount, plan.order)) {
        slots.push({ stackIndex, k, sopInstanceUID: instanceUid(plan, stackIndex, k), instanceNumber: slots.length + 1 });
      }
    });

    const pixels = encoding.signed ? new Int16Array(rows * columns) : new Uint16Array(rows * columns);
    const pixelBytes = new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength);
    const plane = rows * columns;
    // Each slot is one acquisition step: 2D slices take their TR apart, 3D partitions share one time.
    const secondsPerSlot = seq.acquisitionType === '2D' ? Math.max(1, seq.repetitionTime / 1000) : 0;
    for (const slot of slots) {
      const grid = plan.stacks[slot.stackIndex];
      const coreMask = plan.isTarget ? mask.subarray(slot.k * plane, (slot.k + 1) * plane) : undefined;
      const noiseSeed = mixSeed(noiseBase, plan.seriesNumber, slot.stackIndex, slot.k);
      sampleSlice(model, grid, slot.k, seq.contrast, encoding, noiseSeed, pixels, coreMask);
      const position = slicePosition(grid, slot.k);
      const acquired = dateTime(studyStart, seriesStart + 30 + slot.instanceNumber * secondsPerSlot);
      writeDicomFile(join(folder, `${derivedHex(16, slot.sopInstanceUID)}.dcm`), {
        ...seriesLevel,
        InstanceCreationDate: seriesTime.date,
        InstanceCreationTime: seriesTime.time,
        SOPInstanceUID: slot.sopInstanceUID,
        AcquisitionDate: acquired.date,
        ContentDate: acquired.date,
        AcquisitionTime: acquired.time,
        ContentTime: acquired.time,
        InstanceNumber: slot.instanceNumber,
        ImagePositionPatient: position.map(tidy),
        ImageOrientationPatient: [...grid.rowCosine, ...grid.columnCosine].map(tidy),
        SliceLocation: tidy(dot(position, normalOf(grid))),
        PixelData: { vr: 'OW', value: pixelBytes },
      });
    }

    series.push({
      seriesInstanceUID,
      seriesNumber: plan.seriesNumber,
      description: plan.description,
      imageType: plan.imageType,
      orientationKind: plan.orientationKind,
      rows,
      columns,
      instanceCount: slots.length,
      sopInstanceUIDs: slots.map((s) => s.sopInstanceUID),
      dir: join('dicom', plan.folder),
      isTarget: plan.isTarget,
      pixelRepresentation: encoding.signed ? 1 : 0,
      rescaleSlope: plan.writeRescale ? encoding.slope : null,
      rescaleIntercept: plan.writeRescale ? encoding.intercept : null,
      pixelSpacingMm: [tidy(rowSpacing), tidy(columnSpacing)],
      stacks: plan.stacks.map((grid, stackIndex) => describeStack(grid, (k) => instanceUid(plan, stackIndex, k))),
    });
  }

  const maskPath = join('ground-truth', 'tumor-core.nii.gz');
  writeNifti(join(outDir, maskPath), {
    dims: [targetGrid.columns, targetGrid.rows, targetGrid.sliceCount],
    type: 'uint8',
    data: mask,
    affine: affineRas(targetGrid),
    description: `phantom seed ${seed} tumor core`,
  });

  const study: PhantomStudy = {
    seed,
    size,
    slices,
    studyInstanceUID,
    frameOfReferenceUID,
    studyDescription,
    studyDate,
    studyTime,
    accessionNumber,
    patient,
    series,
    targetSeriesInstanceUID: seriesUid(target),
    tumor: { ...tumor, centerLps: tumor.centerLps.map(tidy) as Vec3 },
    maskPath,
  };
  writeJsonAtomic(join(outDir, 'phantom.json'), study);
  return study;
}

function describeStack(grid: StackGrid, uidOf: (k: number) => string): PhantomStack {
  return {
    imageOrientationPatient: [...grid.rowCosine, ...grid.columnCosine].map(tidy),
    sliceCount: grid.sliceCount,
    sliceStepMm: tidy(grid.sliceStep),
    affineRas: affineRas(grid).map((row) => row.map(tidy)),
    sopInstanceUIDs: Array.from({ length: grid.sliceCount }, (_, k) => uidOf(k)),
  };
}
