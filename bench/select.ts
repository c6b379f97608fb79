/**
 * Series selection over a large exam: `clara-dicom select` against a Python selector that follows
 * MONAI Deploy's DICOMSeriesSelectorOperator (bench/peers/select_peer.py), on the same synthetic
 * parser output (2 studies × 120 series with full MR headers), with the seed's Base64 rule and with
 * a heavier four-selection rule set. Also checks that both pick the same series.
 *
 * Run as a script (`node select.js --probe …`) this module is the in-process timing probe: it runs in
 * a fresh process each time, so the first call pays the cold JIT and regex compilation as a Node-RED
 * node does on its first job.
 */
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { entryForKeyword } from '../lib/dicom/dictionary';
import { type DicomJsonAttribute, type DicomJsonObject, dicomJsonKey } from '../lib/dicom/json';
import { derivedUid, seededRandom } from '../lib/phantom/random';
import { selectSeries } from '../lib/select/match';
import { compileRules, decodeRulesText } from '../lib/select/rules';
import { type SelectedImagesFile, SELECTED_IMAGES_FILE, readDicomMetadata, runSelection } from '../lib/select/run';
import { DICOM_METADATA_FILE, type DicomMetadataFile, type DicomMetadataSeries, SERIES_IMAGES_FILE, type SeriesImagesFile } from '../lib/volume/parse';
import { seedSelectionRulesBase64 } from '../test/support/clara';
import { interleave, median, timeProcess } from './process';
import { BenchOptions, BenchRow } from './types';

const CLI = join(__dirname, '..', 'lib', 'cli', 'main.js');
const PYTHON = '/usr/bin/python3';
const PEER = join(__dirname, '..', '..', 'bench', 'peers', 'select_peer.py');
// The peer resolves keywords with the same PS3.6 dictionary we generate at build time.
const DICTIONARY = join(__dirname, '..', 'lib', 'dicom', 'dictionary.json');
const STUDIES = 2;
const SERIES_PER_STUDY = 120;
const TARGET_MS = 50;

// ---------------------------------------------------------------------------------------------
// A synthetic parser output: what clara-dicom-parser writes for a long brain MR exam.

type Plane = 'axial' | 'oblique-axial' | 'coronal' | 'sagittal';

interface SeriesTemplate {
  description: string;
  imageType: string[];
  plane: Plane;
  /** MR unless said otherwise; SR and PR series have no volume. */
  modality?: 'MR' | 'SR' | 'PR';
  te: number;
  tr: number;
  ti?: number;
  flip: number;
  thickness: number;
  scanning: string[];
  variant: string[];
  sequenceName: string;
  acquisition: '2D' | '3D';
  contrast: boolean;
  /** Fewest and most instances, inclusive. */
  instances: [number, number];
  derivation?: string;
}

const ORIENTATIONS: Record<Plane, number[]> = {
  axial: [1, 0, 0, 0, 1, 0],
  // A typical AC-PC tilt: still axial by the largest normal component.
  'oblique-axial': [1, 0, 0, 0, 0.965926, -0.258819],
  coronal: [1, 0, 0, 0, 0, -1],
  sagittal: [0, 1, 0, 0, 0, -1],
};

function mr(description: string, fields: Partial<SeriesTemplate>): SeriesTemplate {
  return {
    description, imageType: ['ORIGINAL', 'PRIMARY', 'M', 'ND'], plane: 'axial', te: 12, tr: 500, flip: 90, thickness: 5,
    scanning: ['SE'], variant: ['SK', 'SP'], sequenceName: '*se2d1', acquisition: '2D', contrast: false, instances: [100, 200], ...fields,
  };
}

const T = {
  localizer: mr('3Plane Loc', { imageType: ['ORIGINAL', 'PRIMARY', 'LOCALIZER'], plane: 'sagittal', scanning: ['GR'], sequenceName: '*fl2d1', te: 4, tr: 8.6, flip: 20, thickness: 7 }),
  t1se: mr('Ax T1 SE', {}),
  t2fse: mr('Ax T2 FSE', { te: 98, tr: 4000, sequenceName: '*tse2d1_15', variant: ['SK', 'SP', 'OSP'], thickness: 5 }),
  flair: mr('Ax T2 FLAIR', { te: 120, tr: 9000, ti: 2500, scanning: ['SE', 'IR'], sequenceName: '*tir2d1_21', thickness: 5 }),
  dwi: mr('Ax DWI b1000', { imageType: ['ORIGINAL', 'PRIMARY', 'DIFFUSION', 'NONE'], te: 89, tr: 6200, scanning: ['EP'], sequenceName: '*ep_b1000t', thickness: 5, instances: [100, 130] }),
  trace: mr('Ax DWI 3-scan TRACE', { imageType: ['ORIGINAL', 'PRIMARY', 'DIFFUSION', 'TRACEW'], te: 89, tr: 6200, scanning: ['EP'], sequenceName: '*ep_b0_1000', thickness: 4, instances: [170, 200] }),
  adc: mr('Ax DWI ADC', { imageType: ['DERIVED', 'PRIMARY', 'DIFFUSION', 'ADC'], te: 89, tr: 6200, scanning: ['EP'], sequenceName: '*ep_b0_1000', thickness: 5, derivation: 'ADC map' }),
  swi: mr('Ax SWI', { te: 20, tr: 28, flip: 15, scanning: ['GR'], sequenceName: '*swi3d1r', acquisition: '3D', thickness: 1.5 }),
  sagT1Flair: mr('Sag T1 FLAIR', { plane: 'sagittal', te: 10, tr: 2000, ti: 860, scanning: ['SE', 'IR'], sequenceName: '*tir2d1_7', thickness: 4 }),
  sagT2: mr('Sag T2 FSE', { plane: 'sagittal', te: 102, tr: 3500, sequenceName: '*tse2d1_17', thickness: 3 }),
  corT2: mr('Cor T2 FSE', { plane: 'coronal', te: 102, tr: 4200, sequenceName: '*tse2d1_17', thickness: 3 }),
  corFlair: mr('Cor FLAIR', { plane: 'coronal', te: 120, tr: 9000, ti: 2500, scanning: ['SE', 'IR'], sequenceName: '*tir2d1_21', thickness: 4 }),
  mprage: mr('Ax 3D T1 MPRAGE', { plane: 'oblique-axial', te: 2.5, tr: 2300, ti: 900, flip: 8, scanning: ['GR', 'IR'], variant: ['SP', 'MP'], sequenceName: '*tfl3d1_16ns', acquisition: '3D', thickness: 1 }),
  ref2x2: mr('Ax T1c 2x2 ref', { plane: 'oblique-axial', te: 2.5, tr: 2300, ti: 900, flip: 8, scanning: ['GR', 'IR'], variant: ['SP', 'MP'], sequenceName: '*tfl3d1_16ns', acquisition: '3D', thickness: 2, contrast: true }),
  ref3x3: mr('Ax T1c 3x3 ref', { plane: 'oblique-axial', te: 2.5, tr: 2300, ti: 900, flip: 8, scanning: ['GR', 'IR'], variant: ['SP', 'MP'], sequenceName: '*tfl3d1_16ns', acquisition: '3D', thickness: 3, contrast: true }),
  axMpr: mr('Ax T1c MPR', { imageType: ['DERIVED', 'SECONDARY', 'MPR'], plane: 'axial', te: 2.5, tr: 2300, ti: 900, flip: 8, scanning: ['GR', 'IR'], sequenceName: '*tfl3d1_16ns', acquisition: '3D', thickness: 1, contrast: true, derivation: 'Axial MPR of the 3D T1c' }),
  target: mr('Ax 3D T1c MPRAGE', { plane: 'oblique-axial', te: 2.5, tr: 2300, ti: 900, flip: 8, scanning: ['GR', 'IR'], variant: ['SP', 'MP'], sequenceName: '*tfl3d1_16ns', acquisition: '3D', thickness: 1, contrast: true }),
  t1cSe: mr('Ax T1c SE', { contrast: true }),
  rfmt: mr('Cor T1c rfmt', { imageType: ['DERIVED', 'SECONDARY', 'REFORMATTED'], plane: 'coronal', te: 2.5, tr: 2300, ti: 900, flip: 8, scanning: ['GR', 'IR'], sequenceName: '*tfl3d1_16ns', acquisition: '3D', thickness: 2, contrast: true, derivation: 'Coronal reformat' }),
  sagMpr: mr('Sag T1c MPR', { imageType: ['DERIVED', 'SECONDARY', 'MPR'], plane: 'sagittal', te: 2.5, tr: 2300, ti: 900, flip: 8, scanning: ['GR', 'IR'], sequenceName: '*tfl3d1_16ns', acquisition: '3D', thickness: 2, contrast: true, derivation: 'Sagittal MPR' }),
  tofMip: mr('Ax TOF MIP', { imageType: ['DERIVED', 'SECONDARY', 'MIP'], te: 3.6, tr: 21, flip: 18, scanning: ['GR'], sequenceName: '*fl3d1r_t70', acquisition: '3D', thickness: 0.5, derivation: 'MIP' }),
  dti: mr('Ax DTI dir', { imageType: ['ORIGINAL', 'PRIMARY', 'DIFFUSION', 'NONE'], te: 95, tr: 8800, scanning: ['EP'], sequenceName: '*ep_b1000#', thickness: 2 }),
  dsc: mr('Perfusion DSC phase', { imageType: ['ORIGINAL', 'PRIMARY', 'PERFUSION', 'NONE'], te: 30, tr: 1500, flip: 90, scanning: ['EP'], sequenceName: '*epfid2d1_128', thickness: 5, contrast: true }),
  rcbv: mr('Perfusion rCBV', { imageType: ['DERIVED', 'PRIMARY', 'PERFUSION', 'RELCBV'], te: 30, tr: 1500, scanning: ['EP'], sequenceName: '*epfid2d1_128', thickness: 5, contrast: true, derivation: 'rCBV map' }),
  flairRepeat: mr('Ax T2 FLAIR repeat', { te: 118, tr: 9500, ti: 2450, scanning: ['SE', 'IR'], sequenceName: '*tir2d1_21', thickness: 5 }),
  sr: mr('PhoenixZIPReport', { modality: 'SR', imageType: [], instances: [1, 1] }),
  pr: mr('Key Images', { modality: 'PR', imageType: [], instances: [1, 1] }),
};

/** One study's series in Series Number order, as the parser lists them. */
function protocolOf(study: number): Array<{ number: number; template: SeriesTemplate; suffix?: string }> {
  const base: SeriesTemplate[] =
    study === 0
      ? [T.localizer, T.t1se, T.t2fse, T.flair, T.dwi, T.trace, T.adc, T.swi, T.sagT1Flair, T.sagT2, T.corT2, T.mprage, T.ref2x2, T.axMpr, T.target, T.t1cSe, T.corFlair, T.flairRepeat]
      : [T.localizer, T.sagT1Flair, T.flair, T.trace, T.dwi, T.adc, T.t2fse, T.swi, T.sagT2, T.mprage, T.ref3x3, T.target, T.t1cSe, T.corT2];
  const series: Array<{ number: number; template: SeriesTemplate; suffix?: string }> = base.map((template, i) => ({ number: i + 1, template }));
  const tail: SeriesTemplate[] = [T.rfmt, T.sagMpr, T.tofMip, T.rcbv, T.sr, T.pr];
  // Diffusion directions and perfusion phases fill the exam up to its size, one series each.
  const fill = SERIES_PER_STUDY - series.length - tail.length;
  const directions = study === 0 ? 30 : 42;
  for (let k = 0; k < fill; k++) {
    const template = k < directions ? T.dti : T.dsc;
    const index = k < directions ? k + 1 : k - directions + 1;
    series.push({ number: 100 + k, template, suffix: ` ${String(index).padStart(2, '0')}` });
  }
  tail.forEach((template, i) => series.push({ number: 400 + i, template }));
  return series;
}

type HeaderValue = string | number | Array<string | number> | { pn: string[] } | Array<Record<string, HeaderValue>>;

const NUMERIC_VRS = new Set(['US', 'SS', 'UL', 'SL', 'FL', 'FD', 'UV', 'SV', 'DS', 'IS']);

/** Keyword-keyed values → the DICOM JSON model, with tags and VRs from our dictionary. */
function toJson(header: Record<string, HeaderValue>, privates: Record<string, DicomJsonAttribute> = {}): DicomJsonObject {
  const out: DicomJsonObject = { ...privates };
  for (const [keyword, value] of Object.entries(header)) {
    const entry = entryForKeyword(keyword);
    if (!entry) throw new Error(`bench select: ${keyword} is not in the dictionary`);
    const key = dicomJsonKey(entry.tag);
    if (entry.vr === 'SQ') {
      out[key] = { vr: 'SQ', Value: (value as Array<Record<string, HeaderValue>>).map((item) => toJson(item)) };
    } else if (typeof value === 'object' && !Array.isArray(value)) {
      out[key] = { vr: entry.vr, Value: value.pn.map((name) => ({ Alphabetic: name })) };
    } else {
      const values = Array.isArray(value) ? (value as Array<string | number>) : [value];
      if (NUMERIC_VRS.has(entry.vr) && values.some((v) => typeof v !== 'number')) throw new Error(`bench select: ${keyword} needs numbers`);
      out[key] = values.length ? { vr: entry.vr, Value: values } : { vr: entry.vr };
    }
  }
  // The parser writes attributes in tag order.
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
}

interface GeneratedSeries {
  series: DicomMetadataSeries;
  template: SeriesTemplate;
  studyInstanceUID: string;
}

function headerOf(template: SeriesTemplate, study: number, number: number, description: string, uids: { study: string; series: string; frame: string; first: string }, random: () => number): DicomJsonObject {
  const studyDate = study === 0 ? '20240312' : '20240918';
  const time = `${String(8 + Math.floor(number / 60)).padStart(2, '0')}${String(number % 60).padStart(2, '0')}12.125000`;
  const modality = template.modality ?? 'MR';
  const common: Record<string, HeaderValue> = {
    SpecificCharacterSet: 'ISO_IR 100',
    InstanceCreationDate: studyDate, InstanceCreationTime: time,
    SOPInstanceUID: uids.first,
    StudyDate: studyDate, SeriesDate: studyDate, ContentDate: studyDate,
    StudyTime: '081502.000000', SeriesTime: time, ContentTime: time,
    AccessionNumber: `ACC${study}7731${number % 10}`,
    Modality: modality,
    Manufacturer: 'SIEMENS', InstitutionName: 'General Hospital', InstitutionAddress: 'Main Street 1,Springfield,US',
    ReferringPhysicianName: { pn: ['Doe^Jane^^Dr.'] }, StationName: 'MRC40712',
    StudyDescription: study === 0 ? 'MRI Brain w/wo contrast' : 'MR BRAIN TUMOR FOLLOW-UP',
    ProcedureCodeSequence: [{ CodeValue: 'MRBRWWO', CodingSchemeDesignator: 'L', CodeMeaning: 'MRI BRAIN W/WO CONTRAST' }],
    SeriesDescription: description,
    InstitutionalDepartmentName: 'Neuroradiology', OperatorsName: { pn: ['Tech^Alex'] }, ManufacturerModelName: 'Skyra',
    PatientName: { pn: ['Phantom^Brain'] }, PatientID: 'PH-0042', IssuerOfPatientID: 'GH', PatientBirthDate: '19640211',
    PatientSex: 'F', PatientAge: '060Y', PatientSize: 1.68, PatientWeight: 64, PatientIdentityRemoved: 'YES',
    DeidentificationMethod: 'synthetic bench data',
    StudyInstanceUID: uids.study, SeriesInstanceUID: uids.series, StudyID: `${study + 1}`, SeriesNumber: number, InstanceNumber: 1,
    RequestingPhysician: { pn: ['Doe^Jane'] }, RequestedProcedureDescription: 'MRI BRAIN W/WO CONTRAST', RequestedProcedureID: `RP${study}1`,
    PerformedProcedureStepStartDate: studyDate, PerformedProcedureStepStartTime: '081502', PerformedProcedureStepID: `PPS${study}01`,
    PerformedProcedureStepDescription: 'MRI Brain w/wo contrast',
    TimezoneOffsetFromUTC: '+0100',
  };
  if (modality !== 'MR') {
    // Non-image objects carry the patient/study modules and little else.
    return toJson({
      ...common,
      SOPClassUID: modality === 'SR' ? '1.2.840.10008.5.1.4.1.1.88.22' : '1.2.840.10008.5.1.4.1.1.11.1',
      ContentLabel: modality === 'PR' ? 'KEY_IMAGES' : 'REPORT', ContentDescription: description,
    });
  }
  const orientation = ORIENTATIONS[template.plane];
  const rows = template.acquisition === '3D' ? 256 : 320;
  const columns = template.acquisition === '3D' ? 256 : 288;
  const pixel = Number((230 / rows).toFixed(6));
  const header: Record<string, HeaderValue> = {
    ...common,
    ImageType: template.imageType,
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
    AcquisitionDate: studyDate, AcquisitionTime: time,
    PerformingPhysicianName: { pn: ['Roe^Sam'] },
    ReferencedImageSequence: [0, 1, 2].map((k) => ({ ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.4', ReferencedSOPInstanceUID: `${uids.study}.9.${k + 1}` })),
    BodyPartExamined: 'BRAIN',
    ScanningSequence: template.scanning, SequenceVariant: template.variant, ScanOptions: template.acquisition === '2D' ? ['SAT1', 'FS'] : ['IR'],
    MRAcquisitionType: template.acquisition, SequenceName: template.sequenceName, AngioFlag: 'N',
    SliceThickness: template.thickness, RepetitionTime: template.tr, EchoTime: template.te,
    NumberOfAverages: 1, ImagingFrequency: 123.251, ImagedNucleus: '1H', EchoNumbers: 1, MagneticFieldStrength: 3,
    SpacingBetweenSlices: Number((template.thickness * 1.1).toFixed(4)), NumberOfPhaseEncodingSteps: Math.round(rows * 0.8),
    EchoTrainLength: template.acquisition === '3D' ? 1 : 15, PercentSampling: 100, PercentPhaseFieldOfView: 90, PixelBandwidth: 200,
    DeviceSerialNumber: '45123', SoftwareVersions: 'syngo MR E11', ProtocolName: description.replace(/ /g, '_'),
    TransmitCoilName: 'Body', ReceiveCoilName: 'Head_32', AcquisitionMatrix: [0, rows, Math.round(columns * 0.9), 0],
    InPlanePhaseEncodingDirection: 'ROW', FlipAngle: template.flip, VariableFlipAngleFlag: 'N',
    SAR: Number((0.5 + random()).toFixed(6)), dBdt: 0, PatientPosition: 'HFS',
    AcquisitionNumber: 1, AcquisitionDuration: Number((60 + random() * 240).toFixed(2)),
    ImagePositionPatient: [-115, -120 + random() * 10, -40 + number * 0.01].map((v) => Number(v.toFixed(6))),
    ImageOrientationPatient: orientation, FrameOfReferenceUID: uids.frame, PositionReferenceIndicator: '',
    SliceLocation: Number((-40 + random() * 5).toFixed(6)), ImageComments: template.contrast ? 'post contrast' : 'pre contrast',
    ImagesInAcquisition: template.instances[1],
    SamplesPerPixel: 1, PhotometricInterpretation: 'MONOCHROME2', Rows: rows, Columns: columns, PixelSpacing: [pixel, pixel],
    BitsAllocated: 16, BitsStored: 12, HighBit: 11, PixelRepresentation: 0, SmallestImagePixelValue: 0,
    LargestImagePixelValue: 1500 + Math.floor(random() * 2500), WindowCenter: 600, WindowWidth: 1200,
    RescaleIntercept: 0, RescaleSlope: 1, RescaleType: 'US', WindowCenterWidthExplanation: 'Algo1',
    LossyImageCompression: '00', PresentationLUTShape: 'IDENTITY',
    RequestAttributesSequence: [{ RequestedProcedureID: `RP${study}1`, ScheduledProcedureStepID: `SPS${study}1`, ScheduledProcedureStepDescription: 'MRI Brain' }],
  };
  if (template.ti !== undefined) header.InversionTime = template.ti;
  if (template.contrast) {
    header.ContrastBolusAgent = 'Gadavist 7.5 mL';
    header.ContrastBolusRoute = 'IV';
    header.ContrastBolusVolume = 7.5;
  }
  if (template.derivation) header.DerivationDescription = template.derivation;
  // Siemens private groups, as real headers carry them.
  const privates: Record<string, DicomJsonAttribute> = {
    '00190010': { vr: 'LO', Value: ['SIEMENS MR HEADER'] },
    '00191008': { vr: 'CS', Value: ['IMAGE NUM 4'] },
    '00191009': { vr: 'LO', Value: ['1.0'] },
    '0019100B': { vr: 'DS', Value: [7400] },
    '0019100F': { vr: 'SH', Value: ['Fast'] },
    '00191012': { vr: 'SL', Value: [0, 0, -23000] },
    '00191015': { vr: 'FD', Value: [-115.2, -120.8, -39.7] },
    '00290010': { vr: 'LO', Value: ['SIEMENS CSA HEADER'] },
    '00291008': { vr: 'CS', Value: ['IMAGE NUM 4'] },
    '00291010': { vr: 'OB' },
    '00291020': { vr: 'OB' },
    '0051100A': { vr: 'LO', Value: ['TA 02:52'] },
    '0051100C': { vr: 'LO', Value: ['FoV 230*230'] },
    '0051100F': { vr: 'LO', Value: ['HEA;HEP'] },
  };
  return toJson(header, privates);
}

export interface SyntheticParse {
  dir: string;
  seriesCount: number;
  instanceCount: number;
  metadataBytes: number;
  seriesImagesBytes: number;
  attributesPerSeries: { min: number; max: number };
  /** The series the seed rule must select, one per study. */
  seedTargets: string[];
}

/** Writes dicom-metadata.json and series-images.json for STUDIES × SERIES_PER_STUDY series into `dir`. */
export function writeSyntheticParse(dir: string): SyntheticParse {
  mkdirSync(dir, { recursive: true });
  const random = seededRandom(20240312);
  const generated: GeneratedSeries[] = [];
  const studies: DicomMetadataFile['studies'] = [];
  for (let study = 0; study < STUDIES; study++) {
    const studyUid = derivedUid('bench-select', study);
    const frame = derivedUid('bench-select', study, 'frame');
    const list: DicomMetadataSeries[] = [];
    for (const { number, template, suffix } of protocolOf(study)) {
      const seriesUid = derivedUid('bench-select', study, 'series', number);
      const [fewest, most] = template.instances;
      const count = fewest + Math.floor(random() * (most - fewest + 1));
      const instances = Array.from({ length: count }, (_v, k) => ({
        SOPInstanceUID: `${seriesUid}.${k + 1}`,
        file: `${String(number).padStart(4, '0')}/IM-${String(number).padStart(4, '0')}-${String(k + 1).padStart(4, '0')}.dcm`,
      }));
      const description = template.description + (suffix ?? '');
      const hasVolume = (template.modality ?? 'MR') === 'MR';
      const series: DicomMetadataSeries = {
        SeriesInstanceUID: seriesUid,
        SeriesNumber: number,
        SeriesDescription: description,
        Modality: template.modality ?? 'MR',
        image: hasVolume ? `${seriesUid}.nii` : null,
        skippedReason: hasVolume ? undefined : 'not an image object (no pixel data)',
        instanceCount: count,
        attributes: headerOf(template, study, number, description, { study: studyUid, series: seriesUid, frame, first: instances[0].SOPInstanceUID }, random),
        instances,
      };
      list.push(series);
      generated.push({ series, template, studyInstanceUID: studyUid });
    }
    studies.push({ StudyInstanceUID: studyUid, series: list });
  }
  const metadata: DicomMetadataFile = { dicomFolder: '../dicom', studies };
  const seriesImages: SeriesImagesFile = {};
  for (const { series, template, studyInstanceUID } of generated) {
    if (!series.image) continue;
    const o = ORIENTATIONS[template.plane];
    const normal = [o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]];
    const spacing = [0.898438, 0.898438, template.thickness];
    const dims: [number, number, number] = [256, 256, series.instanceCount];
    seriesImages[series.SeriesInstanceUID] = {
      image: series.image,
      StudyInstanceUID: studyInstanceUID,
      SeriesInstanceUID: series.SeriesInstanceUID,
      SeriesDescription: series.SeriesDescription,
      SeriesNumber: series.SeriesNumber,
      Modality: 'MR',
      ImageType: template.imageType,
      instanceCount: series.instanceCount,
      stack: 0,
      dims,
      spacing,
      orientation: template.plane === 'oblique-axial' ? 'axial' : template.plane,
      ImageOrientationPatient: o,
      voxelType: 'int16',
      axes: ['L', 'P', 'S'],
      affine: [
        [-o[0] * spacing[0], -o[3] * spacing[1], -normal[0] * spacing[2], 115],
        [-o[1] * spacing[0], -o[4] * spacing[1], -normal[1] * spacing[2], 120],
        [o[2] * spacing[0], o[5] * spacing[1], normal[2] * spacing[2], -40],
        [0, 0, 0, 1],
      ],
      sliceCount: series.instanceCount,
      slices: series.instances.map((i) => ({ sopInstanceUID: i.SOPInstanceUID, frame: 1 })),
      warnings: [],
    };
  }
  // Indented like the parser's own files, so the bytes read are the real ones.
  writeFileSync(join(dir, DICOM_METADATA_FILE), JSON.stringify(metadata, null, 2) + '\n');
  writeFileSync(join(dir, SERIES_IMAGES_FILE), JSON.stringify(seriesImages, null, 2) + '\n');
  const attributeCounts = generated.filter((g) => g.series.image).map((g) => Object.keys(g.series.attributes).length);
  return {
    dir,
    seriesCount: generated.length,
    instanceCount: generated.reduce((n, g) => n + g.series.instanceCount, 0),
    metadataBytes: statSync(join(dir, DICOM_METADATA_FILE)).size,
    seriesImagesBytes: statSync(join(dir, SERIES_IMAGES_FILE)).size,
    attributesPerSeries: { min: Math.min(...attributeCounts), max: Math.max(...attributeCounts) },
    seedTargets: generated.filter((g) => g.template === T.target).map((g) => g.series.SeriesInstanceUID),
  };
}

// ---------------------------------------------------------------------------------------------
// Rules.

/**
 * Four selections with regex look-arounds, numeric ranges and operators, orientation words, list
 * exclusions, all_matched and sort_by_sop_instance_count. Terms are chosen so that MONAI's substring
 * test on list attributes and our membership test agree (see docs/selection-rules.md), so both sides
 * must pick the same series.
 */
export const HEAVY_RULES = {
  selections: [
    {
      name: 'T1C_3D',
      conditions: {
        Modality: '(?i)^MR$',
        StudyDescription: '(?i)\\bbrain\\b',
        SeriesDescription: '(?i)^(?=.*\\bT1c\\b)(?=.*(mprage|3d|spgr|bravo))(?!.*(ref|rfmt|mpr\\b|[0-9]x[0-9]))',
        ImageType: ['ORIGINAL', 'PRIMARY', '!LOCALIZER', '!DERIVED'],
        ImageOrientationPatient: 'Axial',
        SliceThickness: [0.5, 1.5],
        RepetitionTime: [3000, '<'],
        ContrastBolusAgent: '(?i)gad|dotarem|clariscan',
      },
    },
    {
      name: 'FLAIR',
      conditions: {
        Modality: 'MR',
        SeriesDescription: '(?i)flair',
        ImageType: ['ORIGINAL', '!DERIVED'],
        ImageOrientationPatient: 'Axial',
        EchoTime: [80, '>='],
        RepetitionTime: [6000, 12000],
        InversionTime: [1500, '>'],
      },
      all_matched: true,
    },
    {
      name: 'DWI',
      conditions: {
        Modality: 'MR',
        SeriesDescription: '(?i)(dwi|diffusion|trace)',
        ImageType: ['ORIGINAL', 'DIFFUSION', '!ADC'],
        SliceThickness: [3, 6],
        SeriesNumber: [100, '<'],
        MagneticFieldStrength: [1.5, 3],
      },
      sort_by_sop_instance_count: true,
    },
    {
      name: 'SAG_T2',
      conditions: {
        Modality: '(?i)^mr',
        SeriesDescription: '(?i)^sag\\s+t2',
        ImageOrientationPatient: 'Sagittal',
        ScanningSequence: 'SE',
        SliceThickness: [3, '<='],
        EchoTime: [90, 150],
        BodyPartExamined: 'brain',
      },
    },
  ],
};

// ---------------------------------------------------------------------------------------------
// The in-process probe (a fresh child process per measurement).

interface ProbeResult {
  /** compileRules + runSelection, from a cold start of the selector. */
  e2eMs?: number;
  compileMs?: number;
  /** The first selectSeries in the process, metadata already loaded. */
  evalFirstMs?: number;
  /** Median of the second half of the later selectSeries calls (optimised code). */
  evalWarmMs?: number;
}

function probe(argv: string[]): void {
  const [mode, rulesFile, parserDir, outDir, repeatText] = argv;
  const result: ProbeResult = {};
  if (mode === 'e2e') {
    const started = performance.now();
    const rules = compileRules(decodeRulesText(readFileSync(rulesFile, 'utf8')));
    const compiled = performance.now();
    runSelection(parserDir, outDir, rules);
    result.compileMs = compiled - started;
    result.e2eMs = performance.now() - started;
  } else if (mode === 'eval') {
    const rules = compileRules(decodeRulesText(readFileSync(rulesFile, 'utf8')));
    const metadata = readDicomMetadata(parserDir);
    let started = performance.now();
    selectSeries(metadata, rules);
    result.evalFirstMs = performance.now() - started;
    const times: number[] = [];
    for (let k = 0; k < Number(repeatText ?? 0); k++) {
      started = performance.now();
      selectSeries(metadata, rules);
      times.push(performance.now() - started);
    }
    // The first calls still run unoptimised code: the steady state is the second half.
    if (times.length) result.evalWarmMs = median(times.slice(times.length >> 1));
  } else {
    throw new Error(`unknown probe mode ${mode}`);
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}

// ---------------------------------------------------------------------------------------------
// The benchmark.

interface PeerResult {
  e2eMs: number;
  loadMs: number;
  evalFirstMs: number;
  evalWarmMs?: number;
}

function lastJsonLine<R>(stdout: string, who: string): R {
  const line = stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as R;
  } catch {
    throw new Error(`bench select: ${who} printed no timing line: ${stdout.slice(-300)}`);
  }
}

/** The series each side selected, selection by selection, in the order chosen. */
function crossCheck(label: string, ours: SelectedImagesFile, peer: Record<string, string[]>, expectSeed?: string[]): string {
  const problems: string[] = [];
  const names = new Set([...Object.keys(ours), ...Object.keys(peer)]);
  let selected = 0;
  for (const name of names) {
    const a = Object.keys(ours[name] ?? {});
    const b = peer[name] ?? [];
    selected += a.length;
    if (a.length === 0) problems.push(`${name}: we selected nothing, so the rule set tests too little`);
    if (a.join(',') !== b.join(',')) problems.push(`${name}: we selected [${a.join(', ')}], the peer [${b.join(', ')}]`);
  }
  if (expectSeed) {
    const a = Object.values(ours).flatMap((s) => Object.keys(s));
    if (a.join(',') !== expectSeed.join(',')) problems.push(`the seed rule must select exactly the "Ax 3D T1c MPRAGE" series [${expectSeed.join(', ')}], not [${a.join(', ')}]`);
  }
  if (problems.length) throw new Error(`select cross-check failed for the ${label}: ${problems.join('; ')}`);
  return `${selected} series in ${names.size} selection${names.size === 1 ? '' : 's'}`;
}

export async function run(options: BenchOptions): Promise<BenchRow[]> {
  const rounds = options.quick ? 5 : 11;
  const warmRepeats = options.quick ? 40 : 100;
  const root = join(tmpdir(), `clara-bench-select-${process.pid}`);
  rmSync(root, { recursive: true, force: true });
  const parse = writeSyntheticParse(join(root, 'parser'));
  const input =
    `${parse.seriesCount} series (${STUDIES} studies × ${SERIES_PER_STUDY}), ${parse.attributesPerSeries.min}–${parse.attributesPerSeries.max} attributes and ` +
    `100–200 instances per image series; dicom-metadata.json ${(parse.metadataBytes / 2 ** 20).toFixed(1)} MB, series-images.json ${(parse.seriesImagesBytes / 2 ** 20).toFixed(1)} MB`;
  const ruleSets: RuleSet[] = [
    { label: 'seed rule', title: 'seed Base64 rule', text: seedSelectionRulesBase64(), expectSeed: parse.seedTargets },
    { label: '4-selection rules', title: '4 selections', text: JSON.stringify(HEAVY_RULES, null, 2), expectSeed: undefined },
  ];
  const startup = await interleave(rounds, {
    node: () => timeProcess(process.execPath, ['-e', '']),
    python: () => timeProcess(PYTHON, ['-c', '']),
  });
  const startupMs = (name: 'node' | 'python') => median(startup[name].map((t) => t.wallSeconds)) * 1000;
  const context: BenchContext = { parse, input, rounds, warmRepeats, nodeStartupMs: startupMs('node'), pythonStartupMs: startupMs('python'), root };
  const rows: BenchRow[] = [];
  try {
    for (const set of ruleSets) rows.push(...(await benchRuleSet(set, context)));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return rows;
}

interface RuleSet {
  label: string;
  title: string;
  text: string;
  expectSeed?: string[];
}

interface BenchContext {
  parse: SyntheticParse;
  input: string;
  rounds: number;
  warmRepeats: number;
  nodeStartupMs: number;
  pythonStartupMs: number;
  root: string;
}

/** Ours and the peer on one rule set: three rows (whole process, in-process end to end, evaluation only). */
async function benchRuleSet(set: RuleSet, { parse, input, rounds, warmRepeats, nodeStartupMs, pythonStartupMs, root }: BenchContext): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const dir = join(root, set.label.replace(/\W+/g, '-'));
  mkdirSync(dir, { recursive: true });
  const rulesFile = join(dir, 'rules.txt');
  writeFileSync(rulesFile, set.text + '\n');
  const out = (name: string) => {
    const path = join(dir, name);
    mkdirSync(path, { recursive: true });
    return path;
  };
  const peerOut = join(out('peer'), 'selection.json');
  const contenders = {
    oursCli: () => timeProcess(process.execPath, [CLI, 'select', '--rules', rulesFile, '--out', out('cli'), parse.dir]),
    oursE2e: () => timeProcess(process.execPath, [__filename, '--probe', 'e2e', rulesFile, parse.dir, out('probe')]),
    oursEval: () => timeProcess(process.execPath, [__filename, '--probe', 'eval', rulesFile, parse.dir, out('probe-eval'), String(warmRepeats)]),
    peer: () => timeProcess(PYTHON, [PEER, rulesFile, parse.dir, peerOut, DICTIONARY]),
    peerEval: () => timeProcess(PYTHON, [PEER, rulesFile, parse.dir, join(out('peer-eval'), 'selection.json'), DICTIONARY, '--repeat', String(warmRepeats)]),
  };
  // One untimed round warms the page cache and the interpreters' own files.
  await interleave(1, contenders);
  const checked = crossCheck(
    set.label,
    JSON.parse(readFileSync(join(dir, 'cli', SELECTED_IMAGES_FILE), 'utf8')) as SelectedImagesFile,
    JSON.parse(readFileSync(peerOut, 'utf8')) as Record<string, string[]>,
    set.expectSeed,
  );
  const timings = await interleave(rounds, contenders);
  const wallMs = (name: keyof typeof timings) => median(timings[name].map((t) => t.wallSeconds)) * 1000;
  const rss = (name: keyof typeof timings) => median(timings[name].map((t) => t.peakRssMb));
  const ourProbe = (name: 'oursE2e' | 'oursEval', field: keyof ProbeResult) =>
    median(timings[name].map((t) => lastJsonLine<ProbeResult>(t.stdout, 'the probe')[field] ?? NaN));
  const peerProbe = (name: 'peer' | 'peerEval', field: keyof PeerResult) =>
    median(timings[name].map((t) => lastJsonLine<PeerResult>(t.stdout, 'the peer')[field] ?? NaN));
  const peerName = 'Python MONAI-style selector';
  const sameSeries = `Cross-check: both selected the same ${checked}.`;

  const oursWall = wallMs('oursCli');
  const peerWall = wallMs('peer');
  rows.push({
    name: `Select, ${set.title}: whole process (clara-dicom select)`,
    input,
    ours: oursWall,
    peer: peerWall,
    peerName,
    unit: 'ms',
    ratio: peerWall / oursWall,
    higherIsBetter: false,
    oursPeakRssMb: rss('oursCli'),
    peerPeakRssMb: rss('peer'),
    notes:
      `Whole processes under /usr/bin/time, medians of ${rounds}. Bare start-up: node ${nodeStartupMs.toFixed(0)} ms, python3 ${pythonStartupMs.toFixed(0)} ms. ` +
      `We also write selection-report.json (every series' verdict for every selection); the peer writes only its selection. ${sameSeries}`,
  });

  const oursE2e = ourProbe('oursE2e', 'e2eMs');
  const peerE2e = peerProbe('peer', 'e2eMs');
  rows.push({
    name: `Select, ${set.title}: in-process, compile + read + select + write`,
    input,
    ours: oursE2e,
    peer: peerE2e,
    peerName,
    unit: 'ms',
    ratio: peerE2e / oursE2e,
    higherIsBetter: false,
    notes:
      `performance.now() / time.perf_counter() around compileRules + runSelection (json.load + select + json.dump for the peer), once per fresh process (cold), medians of ${rounds}. ` +
      `Rule compilation (dictionary load included): ${ourProbe('oursE2e', 'compileMs').toFixed(1)} ms; the peer's loading (dictionary, rules, metadata): ${peerProbe('peer', 'loadMs').toFixed(1)} ms. ` +
      `We also read series-images.json and write selection-report.json; the peer does neither. ${oursE2e < TARGET_MS ? 'Under' : 'Over'} ${TARGET_MS} ms end to end.`,
  });

  const oursEval = ourProbe('oursEval', 'evalFirstMs');
  const peerEval = peerProbe('peer', 'evalFirstMs');
  rows.push({
    name: `Select, ${set.title}: evaluation only (selectSeries on loaded metadata)`,
    input,
    ours: oursEval,
    peer: peerEval,
    peerName,
    unit: 'ms',
    ratio: peerEval / oursEval,
    target: `< ${TARGET_MS} ms (issue 3; our absolute time, first call in a fresh process)`,
    met: oursEval < TARGET_MS,
    higherIsBetter: false,
    notes:
      `First call in a fresh process (cold JIT), medians of ${rounds} processes. Warm (median of the last ${warmRepeats / 2} of ${warmRepeats} later calls): ours ${ourProbe('oursEval', 'evalWarmMs').toFixed(2)} ms, ` +
      `peer ${peerProbe('peerEval', 'evalWarmMs').toFixed(2)} ms. We evaluate every condition of every series (for the report); the peer stops at the first failed condition, as MONAI does.`,
  });
  return rows;
}

if (require.main === module && process.argv[2] === '--probe') probe(process.argv.slice(3));
