import { type StackGeometry, type Vec3, distance, dot, normalOf, planeOf } from './geometry';
import type { FrameInfo, ImageInstance, ScannedSeries } from './scan';

export type SpacingPolicy = 'warn' | 'reject';

/** One slice of a stack: a frame of an instance. */
export interface SliceRef {
  instance: ImageInstance;
  frame: FrameInfo;
  /** Position along the stack normal (row × column cosines · ImagePositionPatient), mm. */
  along: number;
}

/** A set of parallel slices of one series that becomes one volume. */
export interface Stack {
  seriesInstanceUID: string;
  /** 1-based; stack 1 is the series' main volume (the most slices). */
  index: number;
  /** Sorted by position along the normal, ascending. */
  slices: SliceRef[];
  geometry: StackGeometry;
  plane: ReturnType<typeof planeOf>;
  /** What sets this stack apart from the series' others ("echo 2", "orientation 1,0,0,0,0,-1"), if split. */
  label?: string;
  warnings: string[];
}

export interface StackPlan {
  stacks: Stack[];
  /** Stacks that were not converted, with the reason (spacing rejected, ...). */
  rejected: Array<{ label: string; slices: number; reason: string }>;
  warnings: string[];
}

/** Cosines that differ by less than this (about 0.06°) are the same orientation; DS rounding stays far below. */
const ORIENTATION_TOLERANCE = 1e-3;
/** Positions closer than this are the same slice position, mm. */
const SAME_POSITION_MM = 0.01;

const sameWithin = (a: readonly number[], b: readonly number[], tol: number) => a.every((v, i) => Math.abs(v - b[i]) <= tol);
const relativelySame = (a: number, b: number) => Math.abs(a - b) <= 1e-4 * Math.max(Math.abs(a), Math.abs(b));

/** What slices of one volume must share: in-plane matrix, pixel encoding, orientation and pixel spacing. */
function sameGeometry(a: SliceRef, b: SliceRef): boolean {
  const pa = a.instance.pixel;
  const pb = b.instance.pixel;
  return (
    pa.rows === pb.rows &&
    pa.columns === pb.columns &&
    pa.bitsAllocated === pb.bitsAllocated &&
    pa.pixelRepresentation === pb.pixelRepresentation &&
    a.instance.pixelData.tag === b.instance.pixelData.tag &&
    sameWithin(a.frame.orientation, b.frame.orientation, ORIENTATION_TOLERANCE) &&
    relativelySame(a.frame.pixelSpacing[0], b.frame.pixelSpacing[0]) &&
    relativelySame(a.frame.pixelSpacing[1], b.frame.pixelSpacing[1])
  );
}

function partition<T>(items: T[], same: (a: T, b: T) => boolean): T[][] {
  const groups: T[][] = [];
  for (const item of items) {
    const group = groups.find((g) => same(g[0], item));
    if (group) group.push(item);
    else groups.push([item]);
  }
  return groups;
}

function hasRepeatedPositions(slices: SliceRef[]): boolean {
  const sorted = [...slices].sort((a, b) => a.along - b.along);
  for (let i = 1; i < sorted.length; i++) {
    if (distance(sorted[i].frame.position, sorted[i - 1].frame.position) < SAME_POSITION_MM) return true;
  }
  return false;
}

/**
 * Splits a group by a per-frame key (echo, temporal position) when the group repeats positions and the
 * key has more than one value: each value then becomes its own stack, as dcm2niix writes one file per echo.
 */
function splitBy(group: SliceRef[], key: (s: SliceRef) => number | undefined, name: string): Array<{ slices: SliceRef[]; label?: string }> {
  const values = new Set(group.map(key));
  if (values.size < 2 || !hasRepeatedPositions(group)) return [{ slices: group }];
  return [...values]
    .sort((a, b) => (a ?? -Infinity) - (b ?? -Infinity))
    .map((v) => ({ slices: group.filter((s) => key(s) === v), label: `${name} ${v ?? 'none'}` }));
}

const orderKey = (s: SliceRef) => [s.instance.acquisitionNumber ?? -Infinity, s.instance.instanceNumber ?? -Infinity, s.frame.frame];

function laterThan(a: SliceRef, b: SliceRef): boolean {
  const ka = orderKey(a);
  const kb = orderKey(b);
  for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i] > kb[i];
  return false;
}

/** Removes repeated positions, keeping the slice with the highest AcquisitionNumber (as MONAI's loader does). */
function dropDuplicates(sorted: SliceRef[]): { slices: SliceRef[]; dropped: number } {
  const kept: SliceRef[] = [];
  let dropped = 0;
  for (const slice of sorted) {
    const last = kept[kept.length - 1];
    if (last && distance(last.frame.position, slice.frame.position) < SAME_POSITION_MM) {
      dropped++;
      if (laterThan(slice, last)) kept[kept.length - 1] = slice;
    } else kept.push(slice);
  }
  return { slices: kept, dropped };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const mm = (v: number) => `${Number(v.toFixed(3))} mm`;

/**
 * Checks the steps between sorted slices: missing slices and uneven spacing (`problems`, subject to the
 * spacing policy), and slices shifted in plane (`shear`, a warning: the affine then follows the positions).
 */
function spacingProblems(slices: SliceRef[], rowCosine: Vec3, columnCosine: Vec3): { problems: string[]; shear?: string } {
  if (slices.length < 2) return { problems: [] };
  const steps = slices.slice(1).map((s, i) => s.along - slices[i].along);
  const typical = median(steps);
  const tolerance = Math.max(0.01, 0.01 * typical);
  const problems: string[] = [];
  const uneven = steps.map((step, i) => ({ step, i })).filter(({ step }) => Math.abs(step - typical) > tolerance);
  if (uneven.length > 0) {
    const missing = uneven.reduce((n, { step }) => n + Math.max(0, Math.round(step / typical) - 1), 0);
    const where = uneven.slice(0, 3).map(({ step, i }) => `${mm(step)} after slice ${i + 1}`).join(', ');
    problems.push(
      missing > 0
        ? `about ${missing} missing slice(s): steps of ${where}${uneven.length > 3 ? ', …' : ''} where the usual step is ${mm(typical)}`
        : `uneven slice spacing: steps of ${where}${uneven.length > 3 ? ', …' : ''} where the usual step is ${mm(typical)}`,
    );
  }
  // Slices of one volume are stacked straight along the normal; a sideways drift (gantry tilt, or
  // a mixed-up series) would make the affine wrong for all but the first slice.
  const first = slices[0].frame.position;
  const drift = slices.reduce((worst, s) => {
    const d = [0, 1, 2].map((a) => s.frame.position[a] - first[a]);
    return Math.max(worst, Math.abs(dot(d, rowCosine)), Math.abs(dot(d, columnCosine)));
  }, 0);
  const shear = drift > Math.max(0.01, 0.01 * typical)
    ? `slices shift sideways by up to ${mm(drift)} (gantry tilt or sheared stack): the affine follows the slice positions, so it is sheared`
    : undefined;
  return { problems, shear };
}

/** The slice step written in the affine: dcm2niix's and MONAI's choice, the distance between the first two slices. */
function sliceStepOf(slices: SliceRef[]): number {
  if (slices.length > 1) return distance(slices[1].frame.position, slices[0].frame.position);
  const f = slices[0].frame;
  // One slice: dcm2niix takes SpacingBetweenSlices, else SliceThickness, else 1 mm.
  if (f.spacingBetweenSlices !== undefined && f.spacingBetweenSlices > 0) return f.spacingBetweenSlices;
  if (f.sliceThickness !== undefined && f.sliceThickness > 0) return f.sliceThickness;
  return 1;
}

/** The mean step from the first to the last slice, LPS. */
function sliceVectorOf(slices: SliceRef[]): Vec3 {
  const first = slices[0].frame.position;
  const last = slices[slices.length - 1].frame.position;
  return [0, 1, 2].map((a) => (last[a] - first[a]) / (slices.length - 1)) as Vec3;
}

/**
 * Splits a series' image slices into stacks: by in-plane matrix, pixel encoding, orientation (a 3-plane
 * localizer gives three) and pixel spacing, then by echo or temporal position where positions repeat.
 * Each stack is sorted along its normal, de-duplicated and checked for missing or uneven slices.
 */
export function planStacks(series: ScannedSeries, spacingPolicy: SpacingPolicy): StackPlan {
  const all: SliceRef[] = [];
  for (const instance of series.images) {
    for (const frame of instance.frames) {
      all.push({ instance, frame, along: dot(normalOf({ rowCosine: frame.orientation.slice(0, 3) as Vec3, columnCosine: frame.orientation.slice(3) as Vec3 }), frame.position) });
    }
  }
  const warnings: string[] = [];
  const rejected: StackPlan['rejected'] = [];
  const geometryGroups = partition(all, sameGeometry);
  const candidates: Array<{ slices: SliceRef[]; label?: string }> = [];
  for (const g of geometryGroups) {
    for (const byEcho of splitBy(g, (s) => s.frame.echo, 'echo')) {
      for (const byTime of splitBy(byEcho.slices, (s) => s.frame.temporal, 'temporal position')) {
        const label = [byEcho.label, byTime.label].filter(Boolean).join(', ') || undefined;
        candidates.push({ slices: byTime.slices, label });
      }
    }
  }
  if (geometryGroups.length > 1) {
    const planes = geometryGroups.map((g) => planeOf(g[0].frame.orientation.slice(0, 3), g[0].frame.orientation.slice(3)));
    warnings.push(`series holds ${geometryGroups.length} stacks of different orientation, matrix or spacing (${planes.join(', ')}): each becomes its own volume`);
  }
  // The stack with the most slices is the series' main volume and takes the plain file name.
  const firstNumber = (slices: SliceRef[]) => Math.min(...slices.map((s) => s.instance.instanceNumber ?? Infinity));
  candidates.sort((a, b) => b.slices.length - a.slices.length || firstNumber(a.slices) - firstNumber(b.slices));

  const stacks: Stack[] = [];
  for (const candidate of candidates) {
    const first = candidate.slices[0];
    const rowCosine = first.frame.orientation.slice(0, 3) as Vec3;
    const columnCosine = first.frame.orientation.slice(3) as Vec3;
    const plane = planeOf(rowCosine, columnCosine);
    const sorted = [...candidate.slices].sort((a, b) => a.along - b.along || (a.instance.instanceNumber ?? 0) - (b.instance.instanceNumber ?? 0));
    const { slices, dropped } = dropDuplicates(sorted);
    const stackWarnings: string[] = [];
    if (dropped > 0) stackWarnings.push(`${dropped} slice(s) repeat a position already taken; kept the one with the highest AcquisitionNumber`);
    const label = candidate.label ?? (candidates.length > 1 ? `${plane} ${first.instance.pixel.columns}×${first.instance.pixel.rows}` : undefined);
    const { problems, shear } = spacingProblems(slices, rowCosine, columnCosine);
    if (problems.length > 0 && spacingPolicy === 'reject') {
      rejected.push({ label: label ?? plane, slices: slices.length, reason: `${problems.join('; ')} (spacing policy: reject)` });
      continue;
    }
    stackWarnings.push(...problems);
    if (shear) stackWarnings.push(shear);
    const p = first.instance.pixel;
    stacks.push({
      seriesInstanceUID: series.seriesInstanceUID,
      index: stacks.length + 1,
      slices,
      geometry: {
        rowCosine,
        columnCosine,
        pixelSpacing: first.frame.pixelSpacing,
        sliceStep: sliceStepOf(slices),
        sliceVector: shear ? sliceVectorOf(slices) : undefined,
        origin: slices[0].frame.position,
        columns: p.columns,
        rows: p.rows,
        slices: slices.length,
      },
      plane,
      label,
      warnings: stackWarnings,
    });
  }
  return { stacks, rejected, warnings };
}
