#!/usr/bin/python3
"""Train the bundled demo model models/brain-tumor-tc (T1c -> tumour core) on synthetic phantom studies.

The pipeline is: phantom study (lib/phantom, through the project's CLI) -> the project's own DICOM parser
(so the model sees the T1c volume exactly as the inference node will) -> `preprocess` (THE MODEL CONTRACT)
-> 64^3 patches -> a small 3D U-Net -> ONNX export -> evaluation on held-out seeds.

Run with Debian's python3 (python3-torch python3-onnx python3-nibabel python3-scipy); see README.md.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn as nn
import torch.nn.functional as F

TARGET_SPACING_MM = 2.0
ROI = 64
OVERLAP = 0.25

# Training studies vary the matrix so that the parsed T1c spacing varies (FOV is fixed in mm):
# (size, slices) -> in-plane 256/size mm, slab 160/slices mm.
TRAIN_GEOMETRIES = [(128, 80), (96, 64), (160, 100), (112, 72), (192, 120), (80, 48), (144, 88), (64, 40)]


# ----------------------------------------------------------------------------------------------------------
# Preprocessing: this function IS the model's input contract; the TypeScript inference node mirrors it.
# ----------------------------------------------------------------------------------------------------------
def resample_affine_to_spacing(affine, shape, spacing=TARGET_SPACING_MM):
    """Output grid of `preprocess`: same first-voxel centre and axis directions, voxel size `spacing` mm.

    Output voxel o maps to input continuous index i = o * spacing / s_in on each axis (s_in = input voxel
    size, the norm of the affine column), so the first voxel centres coincide and the last output voxel
    never lies past the last input voxel: n_out = floor((n_in - 1) * s_in / spacing) + 1.
    """
    voxel_sizes = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    factors = spacing / voxel_sizes  # input index step per output voxel
    out_shape = tuple(int(np.floor((n - 1) / f + 1e-3)) + 1 for n, f in zip(shape, factors))
    out_affine = affine.copy()
    out_affine[:3, :3] = affine[:3, :3] * factors[None, :]
    return factors, out_shape, out_affine


def preprocess(nifti_image):
    """Parsed T1c NIfTI -> (float32 array [i, j, k] on the 2 mm grid, that grid's affine, canonical image).

    1. Orient to RAS: nibabel's as_closest_canonical (axis permutation/flips only, no interpolation; the
       parser already writes 3D acquisitions in nearest-RAS order, so this is normally a no-op).
    2. Resample to 2.0 mm voxels along those axes (trilinear, see resample_affine_to_spacing); an oblique
       acquisition keeps its rotation, as MONAI's Orientation + Spacing do.
    3. z-score over nonzero voxels: (v - mean) / std of voxels > 0; zero voxels stay 0.
    The network tensor is then array.transpose(2, 1, 0)[None, None]: [N, 1, D=k(z), H=j(y), W=i(x)].
    """
    canonical = nib.as_closest_canonical(nifti_image)
    data = np.asarray(canonical.get_fdata(dtype=np.float32))  # applies scl_slope / scl_inter
    factors, out_shape, out_affine = resample_affine_to_spacing(canonical.affine, data.shape)
    volume = ndi.affine_transform(data, np.diag(factors), output_shape=out_shape, order=1, mode='nearest')
    nonzero = volume > 0
    if nonzero.any():
        mean, std = float(volume[nonzero].mean()), float(volume[nonzero].std())
        volume = np.where(nonzero, (volume - mean) / max(std, 1e-8), 0.0)
    return volume.astype(np.float32), out_affine, canonical


def resample_label(label_image, target_affine, target_shape, order=0):
    """Label volume onto another grid through world (RAS mm) coordinates; nearest neighbour by default."""
    index_map = np.linalg.inv(label_image.affine) @ target_affine  # target voxel -> label voxel
    data = np.asarray(label_image.dataobj).astype(np.float32)
    out = ndi.affine_transform(data, index_map[:3, :3], offset=index_map[:3, 3], output_shape=target_shape,
                               order=order, mode='constant', cval=0.0)
    return (out >= 0.5).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------
# Data: phantom studies through the project's CLI, cached as .npy
# ----------------------------------------------------------------------------------------------------------
def make_study(node_cli, work_dir, seed, size, slices):
    """Generate + parse one phantom; returns dict with the parsed T1c NIfTI path and ground-truth mask path."""
    name = f'seed{seed}-{size}x{slices}'
    study_dir = os.path.join(work_dir, 'studies', name)
    parsed_dir = os.path.join(work_dir, 'parsed', name)
    manifest_path = os.path.join(study_dir, 'phantom.json')
    if not os.path.exists(manifest_path):
        subprocess.run(['node', node_cli, 'phantom', study_dir, '--size', str(size), '--slices', str(slices),
                        '--seed', str(seed)], check=True, stdout=subprocess.DEVNULL)
    manifest = json.load(open(manifest_path))
    t1c_path = os.path.join(parsed_dir, manifest['targetSeriesInstanceUID'] + '.nii.gz')
    if not os.path.exists(t1c_path):
        subprocess.run(['node', node_cli, 'parse', os.path.join(study_dir, 'dicom'), parsed_dir], check=True,
                       stdout=subprocess.DEVNULL)
    return {'name': name, 'seed': seed, 'size': size, 'slices': slices, 't1c': t1c_path,
            'mask': os.path.join(study_dir, manifest['maskPath']), 'tumor': manifest['tumor']}


def load_case(node_cli, work_dir, seed, size, slices):
    """Preprocessed 2 mm image + mask (mask resampled through world coordinates), cached as .npy."""
    study = make_study(node_cli, work_dir, seed, size, slices)
    cache = os.path.join(work_dir, 'cache', study['name'])
    if not os.path.exists(cache + '.img.npy'):
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        image, affine, _ = preprocess(nib.load(study['t1c']))
        # Trilinear on the mask then >= 0.5 gives a smoother 2 mm target than nearest neighbour.
        mask = resample_label(nib.load(study['mask']), affine, image.shape, order=1)
        np.save(cache + '.img.npy', image)
        np.save(cache + '.msk.npy', mask)
    study['image'] = np.load(cache + '.img.npy')
    study['label'] = np.load(cache + '.msk.npy')
    return study


def to_tensor_layout(array_ijk):
    """nibabel [i, j, k] -> network [D=k, H=j, W=i]."""
    return np.ascontiguousarray(array_ijk.transpose(2, 1, 0))


def pad_to_roi(volume):
    pads = [(0, max(0, ROI - n)) for n in volume.shape]
    return np.pad(volume, pads) if any(p[1] for p in pads) else volume


def sample_patch(case, rng, want_tumour):
    image, label = case['dhw_image'], case['dhw_label']
    if want_tumour and case['tumour_voxels'].shape[0]:
        centre = case['tumour_voxels'][rng.integers(case['tumour_voxels'].shape[0])]
        start = [int(np.clip(c - ROI // 2 + rng.integers(-ROI // 4, ROI // 4 + 1), 0, n - ROI))
                 for c, n in zip(centre, image.shape)]
    else:
        start = [int(rng.integers(0, n - ROI + 1)) for n in image.shape]
    sl = tuple(slice(s, s + ROI) for s in start)
    img, lab = image[sl].copy(), label[sl].copy()
    # Cheap augmentation: intensity scale/shift (scanner variation); no flips since the contract fixes RAS.
    img = img * rng.uniform(0.9, 1.1) + rng.uniform(-0.1, 0.1)
    return img, lab


# ----------------------------------------------------------------------------------------------------------
# Model: 3-level 3D U-Net (channels 8/16/32, bottleneck 64), instance norm, LeakyReLU
# ----------------------------------------------------------------------------------------------------------
class ConvBlock(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(
            nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.InstanceNorm3d(cout, affine=True), nn.LeakyReLU(0.01),
            nn.Conv3d(cout, cout, 3, padding=1, bias=False), nn.InstanceNorm3d(cout, affine=True), nn.LeakyReLU(0.01))


class UNet3D(nn.Module):
    def __init__(self, channels=(8, 16, 32, 64)):
        super().__init__()
        self.encoders = nn.ModuleList()
        cin = 1
        for c in channels:
            self.encoders.append(ConvBlock(cin, c))
            cin = c
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for c in reversed(channels[:-1]):
            self.ups.append(nn.ConvTranspose3d(cin, c, 2, stride=2))
            self.decoders.append(ConvBlock(2 * c, c))
            cin = c
        self.head = nn.Conv3d(cin, 1, 1)

    def forward(self, x):
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x if i == 0 else F.max_pool3d(x, 2))
            skips.append(x)
        skips.pop()
        for up, decoder in zip(self.ups, self.decoders):
            x = decoder(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


def dice_bce_loss(logits, target):
    # Dice over the whole batch, not per patch: on a tumour-free patch a per-patch Dice saturates at 1 and
    # stops penalising false positives, which left bright non-tumour structures segmented.
    prob = torch.sigmoid(logits)
    dice = (2 * (prob * target).sum() + 1) / (prob.sum() + target.sum() + 1)
    return (1 - dice) + F.binary_cross_entropy_with_logits(logits, target)


# ----------------------------------------------------------------------------------------------------------
# Sliding-window inference (constant blending, MONAI-style window placement) and Dice
# ----------------------------------------------------------------------------------------------------------
def window_starts(n, roi=ROI, overlap=OVERLAP):
    if n <= roi:
        return [0]
    step = max(1, int(roi * (1 - overlap)))
    starts = list(range(0, n - roi + 1, step))
    if starts[-1] != n - roi:
        starts.append(n - roi)
    return starts


def sliding_window_logits(run_batch, volume_dhw, batch=2):
    shape = volume_dhw.shape
    padded = pad_to_roi(volume_dhw)
    acc = np.zeros(padded.shape, np.float32)
    count = np.zeros(padded.shape, np.float32)
    corners = [(d, h, w) for d in window_starts(padded.shape[0]) for h in window_starts(padded.shape[1])
               for w in window_starts(padded.shape[2])]
    for b in range(0, len(corners), batch):
        group = corners[b:b + batch]
        x = np.stack([padded[d:d + ROI, h:h + ROI, w:w + ROI] for d, h, w in group])[:, None]
        y = run_batch(x.astype(np.float32))
        for (d, h, w), out in zip(group, y[:, 0]):
            acc[d:d + ROI, h:h + ROI, w:w + ROI] += out
            count[d:d + ROI, h:h + ROI, w:w + ROI] += 1
    return (acc / count)[:shape[0], :shape[1], :shape[2]]


def dice(a, b):
    a, b = a.astype(bool), b.astype(bool)
    denom = a.sum() + b.sum()
    return 1.0 if denom == 0 else 2.0 * (a & b).sum() / denom


def evaluate_case(run_batch, study):
    """Dice at 2 mm, and Dice on the parsed T1c's own grid against the ground truth resampled there (nearest)."""
    logits = sliding_window_logits(run_batch, to_tensor_layout(study['image']))
    pred_2mm = (logits > 0).transpose(2, 1, 0).astype(np.uint8)  # sigmoid > 0.5  <=>  logit > 0
    dice_2mm = dice(pred_2mm, study['label'])
    # Back onto the source grid: the parsed T1c (after as_closest_canonical, as preprocess saw it).
    parsed = nib.load(study['t1c'])
    canonical = nib.as_closest_canonical(parsed)
    _, _, affine_2mm = resample_affine_to_spacing(canonical.affine, canonical.shape)
    pred_src = resample_label(nib.Nifti1Image(pred_2mm, affine_2mm), parsed.affine, parsed.shape, order=0)
    truth_src = resample_label(nib.load(study['mask']), parsed.affine, parsed.shape, order=0)
    return dice_2mm, dice(pred_src, truth_src), dice(largest_component(pred_src), truth_src)


def largest_component(mask):
    """The optional 'keep largest connected component' postprocessing (26-connectivity)."""
    labels, count = ndi.label(mask, structure=np.ones((3, 3, 3)))
    if count <= 1:
        return mask
    sizes = ndi.sum(mask, labels, range(1, count + 1))
    return (labels == 1 + int(np.argmax(sizes))).astype(np.uint8)


def torch_runner(model):
    def run(x):
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()
    return run


# ----------------------------------------------------------------------------------------------------------
# Training, export
# ----------------------------------------------------------------------------------------------------------
def train(model, cases, held_out, minutes, max_steps, batch, lr, tumour_fraction, seed, log):
    rng = np.random.default_rng(seed)
    for case in cases:
        case['dhw_image'] = pad_to_roi(to_tensor_layout(case['image']))
        case['dhw_label'] = pad_to_roi(to_tensor_layout(case['label'])).astype(np.float32)
        case['tumour_voxels'] = np.argwhere(case['dhw_label'] > 0)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-5)
    start = time.time()
    deadline = start + minutes * 60
    step = 0
    running = []
    while step < max_steps and time.time() < deadline:
        model.train()
        # Cosine decay over the wall-clock budget (the budget, not a step count, bounds training).
        progress = min(1.0, (time.time() - start) / (deadline - start))
        for group in optimiser.param_groups:
            group['lr'] = lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * progress)))
        xs, ys = [], []
        for _ in range(batch):
            img, lab = sample_patch(cases[rng.integers(len(cases))], rng, want_tumour=rng.random() < tumour_fraction)
            xs.append(img[None])
            ys.append(lab[None])
        x, y = torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))
        loss = dice_bce_loss(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
        running.append(loss.item())
        if step % 25 == 0:
            msg = f'step {step}  loss {np.mean(running):.4f}  {time.time() - start:.0f} s'
            running = []
            if step % 100 == 0 and held_out:
                model.eval()
                d2, ds, _ = evaluate_case(torch_runner(model), held_out[0])
                msg += f'  | {held_out[0]["name"]} dice 2mm {d2:.3f} src {ds:.3f}'
            log(msg)
    return step, time.time() - start


def export_onnx(model, path):
    model.eval()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    example = torch.zeros(1, 1, ROI, ROI, ROI)
    axes = {0: 'batch', 2: 'depth', 3: 'height', 4: 'width'}
    torch.onnx.export(model, example, path, input_names=['image'], output_names=['logits'], opset_version=17,
                      dynamic_axes={'image': axes, 'logits': axes}, do_constant_folding=True)
    import onnx
    onnx.checker.check_model(onnx.load(path))


def evaluate(model, studies, log):
    model.eval()
    results = []
    for study in studies:
        d2, ds, dl = evaluate_case(torch_runner(model), study)
        results.append({'seed': study['seed'], 'size': study['size'], 'slices': study['slices'],
                        'dice2mm': round(float(d2), 4), 'diceSourceGrid': round(float(ds), 4),
                        'diceSourceGridLargestComponent': round(float(dl), 4)})
        log(f'held-out seed {study["seed"]} ({study["size"]}x{study["slices"]}): dice 2mm {d2:.4f}, '
            f'source grid {ds:.4f}, source grid + largest component {dl:.4f}')
    return results


def parse_seeds(text):
    seeds = []
    for part in text.split(','):
        if '-' in part:
            a, b = part.split('-')
            seeds.extend(range(int(a), int(b) + 1))
        elif part:
            seeds.append(int(part))
    return seeds


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', default=os.path.join(repo, 'models', 'brain-tumor-tc'), help='model directory (Triton layout)')
    p.add_argument('--work', default='/tmp/train-demo', help='phantom studies, parsed volumes, .npy cache')
    p.add_argument('--node-cli', default=os.path.join(repo, '.build-train', 'lib', 'cli', 'main.js'),
                   help='compiled clara-dicom CLI (build with BUILD_DIR=.build-train node scripts/build.mjs)')
    p.add_argument('--seeds', default='100-123', help='training seeds, e.g. 100-123 or 100,101,105')
    p.add_argument('--eval-seeds', default='1-5', help='held-out seeds (never trained on)')
    p.add_argument('--eval-geometry', default='128x80', help='size x slices of the held-out studies')
    p.add_argument('--minutes', type=float, default=15.0, help='training wall-clock budget')
    p.add_argument('--steps', type=int, default=100000, help='step cap (whichever comes first)')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--lr', type=float, default=3e-3)
    p.add_argument('--tumour-fraction', type=float, default=0.4, help='share of patches centred near the tumour')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--seed', type=int, default=0, help='torch / sampling seed')
    p.add_argument('--eval-only', action='store_true',
                   help='skip training: evaluate <work>/model.pt on the held-out seeds and geometry')
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    log = lambda msg: print(msg, flush=True)

    train_seeds = parse_seeds(args.seeds)
    eval_seeds = parse_seeds(args.eval_seeds)
    overlap = set(train_seeds) & set(eval_seeds)
    if overlap:
        sys.exit(f'held-out seeds {sorted(overlap)} are also training seeds')
    eval_size, eval_slices = (int(v) for v in args.eval_geometry.split('x'))
    if args.eval_only:
        model = UNet3D()
        model.load_state_dict(torch.load(os.path.join(args.work, 'model.pt')))
        evaluate(model, [load_case(args.node_cli, args.work, s, eval_size, eval_slices) for s in eval_seeds], log)
        return
    t0 = time.time()
    cases = [load_case(args.node_cli, args.work, s, *TRAIN_GEOMETRIES[i % len(TRAIN_GEOMETRIES)])
             for i, s in enumerate(train_seeds)]
    held_out = [load_case(args.node_cli, args.work, s, eval_size, eval_slices) for s in eval_seeds]
    log(f'data: {len(cases)} training + {len(held_out)} held-out studies in {time.time() - t0:.0f} s')

    model = UNet3D()
    log(f'parameters: {sum(p.numel() for p in model.parameters())}')
    steps, seconds = train(model, cases, held_out, args.minutes, args.steps, args.batch, args.lr,
                           args.tumour_fraction, args.seed, log)
    log(f'trained {steps} steps in {seconds:.0f} s')

    onnx_path = os.path.join(args.out, '1', 'model.onnx')
    export_onnx(model, onnx_path)
    torch.save(model.state_dict(), os.path.join(args.work, 'model.pt'))
    log(f'exported {onnx_path} ({os.path.getsize(onnx_path)} bytes)')

    results = evaluate(model, held_out, log)
    summary = {'trainSeeds': train_seeds, 'trainGeometries': [list(g) for g in TRAIN_GEOMETRIES], 'steps': steps,
               'trainSeconds': round(seconds), 'batch': args.batch, 'lr': args.lr, 'tumourFraction': args.tumour_fraction, 'heldOut': results}
    with open(os.path.join(args.work, 'training-summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    log(json.dumps(summary))


if __name__ == '__main__':
    main()
