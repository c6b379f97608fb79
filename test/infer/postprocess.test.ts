import assert from 'node:assert/strict';
import { fillHoles, keepLargestComponent, labelsFromChannels } from '../../lib/infer/postprocess';

const DIMS: [number, number, number] = [12, 10, 8];
const index = (x: number, y: number, z: number) => (z * DIMS[1] + y) * DIMS[0] + x;

function box(labels: Uint8Array, from: number[], to: number[], value: number): void {
  for (let z = from[2]; z <= to[2]; z++) for (let y = from[1]; y <= to[1]; y++) for (let x = from[0]; x <= to[0]; x++) labels[index(x, y, z)] = value;
}

describe('lib/infer postprocessing: activation, decision, components, holes', () => {
  it('thresholds sigmoid logits at 0.5 and writes each channel\'s label', () => {
    const logits = Float32Array.from([-3, 0.2, 5, -0.1, /* channel 2 */ 4, -4, 4, -4]);
    assert.deepEqual(Array.from(labelsFromChannels(logits, 2, 4, { activation: 'sigmoid', decision: 'threshold' })), [2, 1, 2, 0]);
    assert.deepEqual(Array.from(labelsFromChannels(logits, 2, 4, { activation: 'sigmoid', decision: 'threshold', threshold: 0.9, labels: [7, 9] })), [9, 0, 9, 0]);
  });

  it('takes the argmax over channels (softmax or not), channel 0 as background', () => {
    const scores = Float32Array.from([5, 0, 0, /* c1 */ 1, 6, 0, /* c2 */ 0, 2, 3]);
    assert.deepEqual(Array.from(labelsFromChannels(scores, 3, 3, { activation: 'softmax', decision: 'argmax' })), [0, 1, 2]);
    assert.deepEqual(Array.from(labelsFromChannels(scores, 3, 3, { activation: 'none', decision: 'argmax', labels: [0, 4, 1] })), [0, 4, 1]);
  });

  it('refuses outputs that do not fit and label maps that do not match', () => {
    assert.throws(() => labelsFromChannels(new Float32Array(5), 2, 3, { activation: 'none', decision: 'argmax' }), /5 values, not 2 channel\(s\) × 3 voxels/);
    assert.throws(() => labelsFromChannels(new Float32Array(6), 2, 3, { activation: 'none', decision: 'argmax', labels: [1] }), /1 label\(s\) given for 2/);
    assert.throws(() => labelsFromChannels(new Float32Array(6), 2, 3, { activation: 'softmax', decision: 'threshold' }), /use argmax/);
  });

  it('keeps only the largest component of each label; 26-connectivity joins corner neighbours', () => {
    const labels = new Uint8Array(DIMS[0] * DIMS[1] * DIMS[2]);
    box(labels, [1, 1, 1], [4, 4, 4], 1); // 64 voxels
    box(labels, [5, 5, 5], [5, 5, 5], 1); // touches the big box only at a corner
    box(labels, [8, 1, 1], [9, 2, 2], 1); // 8 voxels, apart
    box(labels, [8, 6, 5], [10, 8, 6], 2); // label 2: one component, kept
    const kept26 = keepLargestComponent(labels, DIMS);
    assert.equal(kept26[index(5, 5, 5)], 1, 'a corner neighbour belongs to the component');
    assert.equal(kept26[index(8, 1, 1)], 0);
    assert.equal(kept26[index(9, 7, 6)], 2);
    const kept6 = keepLargestComponent(labels, DIMS, 6);
    assert.equal(kept6[index(5, 5, 5)], 0);
    assert.equal(kept6[index(2, 2, 2)], 1);
  });

  it('fills an enclosed hole with the label around it, but not background open to the border', () => {
    const labels = new Uint8Array(DIMS[0] * DIMS[1] * DIMS[2]);
    box(labels, [1, 1, 1], [6, 6, 6], 1);
    box(labels, [3, 3, 3], [4, 4, 4], 0); // sealed cavity
    box(labels, [0, 3, 3], [2, 4, 4], 0); // a tunnel from the border: stays open
    const filled = fillHoles(labels, DIMS);
    assert.equal(filled[index(3, 3, 3)], 0, 'the cavity reached by the tunnel stays open');
    box(labels, [0, 3, 3], [2, 4, 4], 1); // close the tunnel
    const sealed = fillHoles(labels, DIMS);
    assert.equal(sealed[index(3, 3, 3)], 1);
    assert.equal(sealed[index(4, 4, 4)], 1);
    assert.equal(sealed[index(0, 0, 0)], 0, 'outside stays background');
  });
});
