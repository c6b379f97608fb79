/**
 * From model output to a label volume, as MONAI's post transforms do it: an activation (sigmoid or
 * softmax over channels), a decision (threshold per channel, or argmax), a channel → label map, and
 * optional clean-up (keep the largest connected component, fill enclosed holes). Tensors are
 * channel-first with x fastest, as in sliding-window.ts.
 */

export type Activation = 'none' | 'sigmoid' | 'softmax';

export interface LabelOptions {
  activation: Activation;
  /** 'threshold': each channel above `threshold` gets its label (later channels win); 'argmax': the strongest channel. */
  decision: 'threshold' | 'argmax';
  threshold?: number;
  /** Label written for each channel; with argmax, channel 0 is usually background (label 0). Default: channel c → c + 1 for threshold, c for argmax. */
  labels?: number[];
  /**
   * Threshold only: the order channels are painted in, the last painted winning where they overlap.
   * Nested regions (BraTS: WT ⊃ TC ⊃ ET) need the outer one first. Default: channel order.
   */
  paintOrder?: number[];
}

function paintAbove(data: Float32Array, base: number, voxels: number, cut: number, label: number, out: Uint8Array): void {
  for (let v = 0; v < voxels; v++) if (data[base + v] > cut) out[v] = label;
}

/** Applies the activation and the decision: one uint8 label per voxel. */
export function labelsFromChannels(data: Float32Array, channels: number, voxels: number, options: LabelOptions): Uint8Array {
  if (data.length !== channels * voxels) throw new Error(`the model output has ${data.length} values, not ${channels} channel(s) × ${voxels} voxels`);
  const labels = options.labels ?? Array.from({ length: channels }, (_v, c) => (options.decision === 'threshold' ? c + 1 : c));
  if (labels.length !== channels) throw new Error(`${labels.length} label(s) given for ${channels} output channel(s)`);
  if (labels.some((l) => !Number.isInteger(l) || l < 0 || l > 255)) throw new Error('labels must be integers from 0 to 255');
  if (options.decision === 'threshold' && options.activation === 'softmax') throw new Error('softmax with a threshold is not supported: use argmax');
  const out = new Uint8Array(voxels);
  if (options.decision === 'threshold') {
    const threshold = options.threshold ?? 0.5;
    const order = options.paintOrder ?? labels.map((_l, c) => c);
    if (order.length !== channels || new Set(order).size !== channels || order.some((c) => !Number.isInteger(c) || c < 0 || c >= channels)) {
      throw new Error(`the paint order must name each of the ${channels} channel(s) once, not [${order.join(', ')}]`);
    }
    // The sigmoid is monotonic: sigmoid(x) > t exactly where x > logit(t), so no voxel needs an exp.
    const cut = options.activation !== 'sigmoid' ? threshold : threshold <= 0 ? -Infinity : threshold >= 1 ? Infinity : Math.log(threshold / (1 - threshold));
    for (const c of order) paintAbove(data, c * voxels, voxels, cut, labels[c], out);
    return out;
  }
  // argmax: softmax and sigmoid are monotonic per voxel, so the strongest channel is the same before and after.
  for (let v = 0; v < voxels; v++) {
    let best = 0;
    let bestValue = data[v];
    for (let c = 1; c < channels; c++) {
      const x = data[c * voxels + v];
      if (x > bestValue) {
        bestValue = x;
        best = c;
      }
    }
    out[v] = labels[best];
  }
  return out;
}

/** Neighbour offsets for 6- (faces) or 26-connectivity (faces, edges, corners). */
function neighbourhood(connectivity: 6 | 26): Array<[number, number, number]> {
  const out: Array<[number, number, number]> = [];
  for (let dz = -1; dz <= 1; dz++) for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
    const steps = Math.abs(dx) + Math.abs(dy) + Math.abs(dz);
    if (steps === 0 || (connectivity === 6 && steps > 1)) continue;
    out.push([dx, dy, dz]);
  }
  return out;
}

/**
 * Connected components of the voxels where `inside(v)` holds: a component id per voxel (0 outside) and
 * each component's size, and whether it touches the volume's border.
 */
function components(dims: [number, number, number], inside: (v: number) => boolean, connectivity: 6 | 26): { ids: Int32Array; sizes: number[]; touchesBorder: boolean[] } {
  const [nx, ny, nz] = dims;
  const ids = new Int32Array(nx * ny * nz);
  const sizes = [0];
  const touchesBorder = [false];
  const offsets = neighbourhood(connectivity);
  const stack = new Int32Array(nx * ny * nz);
  for (let start = 0; start < ids.length; start++) {
    if (ids[start] || !inside(start)) continue;
    const id = sizes.length;
    let size = 0;
    let border = false;
    let top = 0;
    stack[top++] = start;
    ids[start] = id;
    while (top > 0) {
      const v = stack[--top];
      size++;
      const x = v % nx;
      const y = Math.floor(v / nx) % ny;
      const z = Math.floor(v / (nx * ny));
      if (x === 0 || y === 0 || z === 0 || x === nx - 1 || y === ny - 1 || z === nz - 1) border = true;
      for (const [dx, dy, dz] of offsets) {
        const X = x + dx;
        const Y = y + dy;
        const Z = z + dz;
        if (X < 0 || Y < 0 || Z < 0 || X >= nx || Y >= ny || Z >= nz) continue;
        const w = (Z * ny + Y) * nx + X;
        if (!ids[w] && inside(w)) {
          ids[w] = id;
          stack[top++] = w;
        }
      }
    }
    sizes.push(size);
    touchesBorder.push(border);
  }
  return { ids, sizes, touchesBorder };
}

/**
 * Keeps, for each label, only its largest connected component (MONAI KeepLargestConnectedComponent,
 * applied per label; full 26-connectivity by default, as MONAI's default).
 */
export function keepLargestComponent(labels: Uint8Array, dims: [number, number, number], connectivity: 6 | 26 = 26): Uint8Array {
  const out = Uint8Array.from(labels);
  for (const label of new Set(labels)) {
    if (label === 0) continue;
    const { ids, sizes } = components(dims, (v) => labels[v] === label, connectivity);
    let largest = 1;
    for (let id = 2; id < sizes.length; id++) if (sizes[id] > sizes[largest]) largest = id;
    for (let v = 0; v < out.length; v++) if (ids[v] && ids[v] !== largest) out[v] = 0;
  }
  return out;
}

/**
 * Fills background regions that do not reach the volume's border (MONAI FillHoles): each hole takes the
 * label that surrounds it, when one label does. Background connectivity is 6, so a hole must be sealed
 * by face neighbours.
 */
export function fillHoles(labels: Uint8Array, dims: [number, number, number]): Uint8Array {
  const out = Uint8Array.from(labels);
  const { ids, touchesBorder } = components(dims, (v) => labels[v] === 0, 6);
  const [nx, ny] = dims;
  const enclosing = new Map<number, number>();
  for (let v = 0; v < labels.length; v++) {
    const id = ids[v];
    if (!id || touchesBorder[id]) continue;
    // The label around the hole: any labelled face neighbour (a hole between two labels is left alone).
    for (const w of [v - 1, v + 1, v - nx, v + nx, v - nx * ny, v + nx * ny]) {
      if (w < 0 || w >= labels.length || labels[w] === 0) continue;
      const seen = enclosing.get(id);
      enclosing.set(id, seen === undefined || seen === labels[w] ? labels[w] : -1);
    }
  }
  for (let v = 0; v < labels.length; v++) {
    const label = enclosing.get(ids[v]);
    if (ids[v] && label !== undefined && label > 0) out[v] = label;
  }
  return out;
}
