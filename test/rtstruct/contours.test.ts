import assert from 'node:assert/strict';
import { MAX_TOLERANCE_PX, simplifyContour, traceContours } from '../../lib/rtstruct/contours';
import { distanceToPolygon, firstCrossing, lcg, rasterizeEvenOdd } from './helpers';

/** A slice from rows of text: '#' labelled (value 1), anything else not. */
function slice(lines: string[], value = 1): { data: Uint8Array; columns: number; rows: number } {
  const rows = lines.length;
  const columns = lines[0].length;
  const data = new Uint8Array(rows * columns);
  lines.forEach((line, y) => [...line].forEach((ch, x) => (data[y * columns + x] = ch === '#' ? value : 0)));
  return { data, columns, rows };
}

function shape(columns: number, rows: number, inside: (x: number, y: number) => boolean): Uint8Array {
  const data = new Uint8Array(columns * rows);
  for (let y = 0; y < rows; y++) for (let x = 0; x < columns; x++) data[y * columns + x] = inside(x, y) ? 1 : 0;
  return data;
}

const pairs = (points: Float64Array) => Array.from({ length: points.length / 2 }, (_, k) => [points[2 * k], points[2 * k + 1]]);

/** Traced, optionally reduced, rasterized back by pixel centres: must be the mask again, exactly. */
function assertRoundTrip(data: Uint8Array, columns: number, rows: number, tolerance = 0, what = ''): Float64Array[] {
  const contours = traceContours(data, columns, rows, 1).map((c) => simplifyContour(c.points, tolerance));
  const back = rasterizeEvenOdd(contours, columns, rows);
  const wrong = data.findIndex((v, n) => (v === 1 ? 1 : 0) !== back[n]);
  assert.equal(wrong, -1, `${what}: pixel (${wrong % columns}, ${Math.floor(wrong / columns)}) changes on the round trip (tolerance ${tolerance})`);
  return contours;
}

describe('lib/rtstruct contours: marching squares at the 0.5 level and point reduction', () => {
  it('traces a square through the midpoints of its boundary edges, corners cut, collinear points removed', () => {
    const { data, columns, rows } = slice(['.....', '.###.', '.###.', '.###.', '.....']);
    const [contour, ...rest] = traceContours(data, columns, rows, 1);
    assert.equal(rest.length, 0);
    assert.equal(contour.hole, false);
    // Every vertex is half-way along a pixel edge: one coordinate whole, the other half.
    for (const [x, y] of pairs(contour.points)) assert.ok((x % 1 === 0) !== (y % 1 === 0), `vertex (${x}, ${y})`);
    const octagon = pairs(simplifyContour(contour.points, 0));
    assert.equal(octagon.length, 8);
    const expected = [[1, 0.5], [3, 0.5], [3.5, 1], [3.5, 3], [3, 3.5], [1, 3.5], [0.5, 3], [0.5, 1]];
    for (const p of expected) assert.ok(octagon.some((q) => q[0] === p[0] + 0 && q[1] === p[1]), `corner ${p} in ${JSON.stringify(octagon)}`);
    assertRoundTrip(data, columns, rows, 0, 'square');
  });

  it('closes a single pixel as a diamond half a pixel around its centre', () => {
    const { data, columns, rows } = slice(['...', '.#.', '...']);
    const [contour] = traceContours(data, columns, rows, 1);
    const points = pairs(contour.points).map(([x, y]) => `${x},${y}`).sort();
    assert.deepEqual(points, ['0.5,1', '1,0.5', '1,1.5', '1.5,1']);
    assert.equal(simplifyContour(contour.points, MAX_TOLERANCE_PX).length, 8, 'no point of a diamond can go');
    assertRoundTrip(data, columns, rows, MAX_TOLERANCE_PX, 'pixel');
  });

  it('traces a disc as one outer contour, and gives it back exactly with and without point reduction', () => {
    const columns = 41, rows = 37;
    const data = shape(columns, rows, (x, y) => Math.hypot(x - 20.3, y - 17.8) <= 12.4);
    const raw = traceContours(data, columns, rows, 1);
    assert.equal(raw.length, 1);
    assert.equal(raw[0].hole, false);
    const lossless = assertRoundTrip(data, columns, rows, 0, 'disc');
    const reduced = assertRoundTrip(data, columns, rows, MAX_TOLERANCE_PX, 'disc');
    assert.ok(lossless[0].length < raw[0].points.length, 'collinear points went');
    // A binary staircase deviates ±0.35 px or more from any chord: 0.25 px can take little beyond collinear points.
    assert.ok(reduced[0].length <= lossless[0].length, `0.25 px keeps at most as many (${reduced[0].length / 2} of ${lossless[0].length / 2} points)`);
  });

  it('keeps every removed point within the tolerance of the reduced contour', () => {
    const columns = 60, rows = 50;
    const random = lcg(7);
    const centres = Array.from({ length: 5 }, () => [10 + random() * 40, 8 + random() * 34, 4 + random() * 8]);
    const data = shape(columns, rows, (x, y) => centres.some(([cx, cy, r]) => Math.hypot((x - cx) * 1.3, y - cy) <= r));
    for (const tolerance of [0, 0.1, MAX_TOLERANCE_PX]) {
      for (const contour of traceContours(data, columns, rows, 1)) {
        const reduced = simplifyContour(contour.points, tolerance);
        let worst = 0;
        for (const [x, y] of pairs(contour.points)) worst = Math.max(worst, distanceToPolygon(x, y, reduced));
        assert.ok(worst <= tolerance + 1e-9, `tolerance ${tolerance}: a removed point lies ${worst} px from the reduced contour`);
        // A subset of the original points, in ring order.
        const original = pairs(contour.points).map((p) => p.join(','));
        const indices = pairs(reduced).map((q) => original.indexOf(q.join(',')));
        assert.ok(indices.every((i) => i >= 0), 'every reduced point is an original point');
        assert.ok(indices.filter((i, k) => indices[(k + 1) % indices.length] < i).length <= 1, 'in ring order');
      }
    }
    assert.throws(() => simplifyContour(new Float64Array(8), 0.3), /from 0 to 0\.25 pixel/);
    assert.throws(() => simplifyContour(new Float64Array(8), -0.1), /from 0 to 0\.25 pixel/);
  });

  it('traces a ring as an outer contour and a hole inside it, and XOR fills it back', () => {
    const columns = 30, rows = 30;
    const data = shape(columns, rows, (x, y) => {
      const r = Math.hypot(x - 14.6, y - 15.2);
      return r <= 11 && r > 5.5;
    });
    const contours = traceContours(data, columns, rows, 1);
    assert.equal(contours.length, 2);
    const [outer, hole] = contours[0].hole ? [contours[1], contours[0]] : [contours[0], contours[1]];
    assert.equal(outer.hole, false);
    assert.equal(hole.hole, true);
    // The hole lies inside the outer contour: its first vertex is inside by the crossing rule.
    const inside = rasterizeEvenOdd([outer.points], columns, rows);
    const [hx, hy] = [Math.round(hole.points[0]), Math.round(hole.points[1])];
    assert.equal(inside[hy * columns + hx], 1);
    assertRoundTrip(data, columns, rows, 0, 'ring');
    assertRoundTrip(data, columns, rows, MAX_TOLERANCE_PX, 'ring');
  });

  it('traces two islands as two outer contours', () => {
    const { data, columns, rows } = slice(['..........', '.###......', '.###...##.', '.......##.', '..........']);
    const contours = traceContours(data, columns, rows, 1);
    assert.equal(contours.length, 2);
    assert.ok(contours.every((c) => !c.hole));
    assertRoundTrip(data, columns, rows, 0, 'islands');
  });

  it('closes regions that touch the slice border half a pixel outside the last pixel centres', () => {
    const { data, columns, rows } = slice(['#####', '#...#', '#...#', '#####']);
    const contours = traceContours(data, columns, rows, 1);
    assert.equal(contours.length, 2);
    const all = contours.flatMap((c) => pairs(c.points));
    assert.equal(Math.min(...all.map((p) => p[0])), -0.5);
    assert.equal(Math.max(...all.map((p) => p[0])), columns - 0.5);
    assert.equal(Math.min(...all.map((p) => p[1])), -0.5);
    assert.equal(Math.max(...all.map((p) => p[1])), rows - 0.5);
    assertRoundTrip(data, columns, rows, 0, 'frame');
    const full = new Uint8Array(7 * 3).fill(1);
    assert.equal(traceContours(full, 7, 3, 1).length, 1);
    assertRoundTrip(full, 7, 3, MAX_TOLERANCE_PX, 'full slice');
  });

  it('resolves saddles the same way everywhere: labelled pixels touching at a corner are one region, holes touching at a corner two', () => {
    for (const lines of [['#.', '.#'], ['.#', '#.']]) {
      const padded = slice(['....', `.${lines[0]}.`, `.${lines[1]}.`, '....']);
      const contours = traceContours(padded.data, padded.columns, padded.rows, 1);
      assert.equal(contours.length, 1, `${lines.join('/')}: diagonal pixels are one contour`);
      assertRoundTrip(padded.data, padded.columns, padded.rows, MAX_TOLERANCE_PX, lines.join('/'));
      assert.equal(firstCrossing(contours.map((c) => c.points)), undefined, 'the pinched contour does not touch itself');
    }
    const holes = slice(['######', '##.###', '###.##', '######']);
    const contours = traceContours(holes.data, holes.columns, holes.rows, 1);
    assert.equal(contours.filter((c) => c.hole).length, 2, 'unlabelled pixels touching at a corner are two holes');
    assertRoundTrip(holes.data, holes.columns, holes.rows, MAX_TOLERANCE_PX, 'holes');
  });

  it('gives back random masks exactly, with simple contours that never meet, up to 0.25 pixel of reduction', () => {
    const random = lcg(2024);
    for (let trial = 0; trial < 40; trial++) {
      const columns = 8 + Math.floor(random() * 14);
      const rows = 8 + Math.floor(random() * 14);
      const density = 0.3 + random() * 0.4;
      const data = shape(columns, rows, () => random() < density);
      for (const tolerance of [0, MAX_TOLERANCE_PX]) {
        const contours = assertRoundTrip(data, columns, rows, tolerance, `trial ${trial}`);
        assert.equal(firstCrossing(contours), undefined, `trial ${trial}, tolerance ${tolerance}: ${firstCrossing(contours)}`);
      }
    }
  });

  it('traces only the value asked for, within a box, deterministically', () => {
    const { data, columns, rows } = slice(['.##..', '.##..', '.....']);
    data[14] = 2;
    assert.equal(traceContours(data, columns, rows, 2).length, 1);
    assert.equal(traceContours(data, columns, rows, 3).length, 0);
    const once = traceContours(data, columns, rows, 1).map((c) => Array.from(c.points));
    assert.deepEqual(traceContours(data, columns, rows, 1).map((c) => Array.from(c.points)), once);
    assert.deepEqual(traceContours(data, columns, rows, 1, { x0: 1, y0: 0, x1: 2, y1: 1 }).map((c) => Array.from(c.points)), once);
  });
});
