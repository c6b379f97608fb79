"""Rebuilds the label volume of a DICOM Segmentation on its source series, with pydicom and numpy only.

Independent of the package's code: source slices are sorted here along the normal of their own
ImageOrientationPatient, each SEG frame is placed by the ImagePositionPatient of its PerFrameFunctionalGroups
item and labelled by its ReferencedSegmentNumber. BINARY pixel data is unpacked as PS3.5 8.1.1 says
(one bit stream over all frames, least significant bit first) and compared with pydicom's own decoding.

usage: seg_readback.py <seg.dcm> <source-dir> <out.raw>
Writes the labels (slices x rows x columns, uint8, slices ascending along the normal) to out.raw and a JSON
summary to stdout.
"""
import json
import os
import sys

import numpy as np
import pydicom


def main(seg_path, source_dir, out_path):
    seg = pydicom.dcmread(seg_path)
    sources = []
    for root, _dirs, files in os.walk(source_dir):
        for name in files:
            try:
                ds = pydicom.dcmread(os.path.join(root, name), stop_before_pixels=True)
            except Exception:
                continue
            if 'ImagePositionPatient' in ds:
                sources.append(ds)
    if not sources:
        raise SystemExit('no source images in ' + source_dir)
    series = {str(ds.SeriesInstanceUID) for ds in sources}
    referenced = str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)
    sources = [ds for ds in sources if str(ds.SeriesInstanceUID) == referenced]
    if not sources:
        raise SystemExit('the referenced series %s is not among %s' % (referenced, sorted(series)))

    iop = np.array([float(v) for v in sources[0].ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    sources.sort(key=lambda ds: float(np.dot(normal, [float(v) for v in ds.ImagePositionPatient])))
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in sources])
    rows, columns = int(sources[0].Rows), int(sources[0].Columns)
    assert int(seg.Rows) == rows and int(seg.Columns) == columns, 'SEG matrix differs from the source'

    frames = int(seg.NumberOfFrames)
    kind = str(seg.SegmentationType)
    raw = seg.PixelData
    if kind == 'BINARY':
        assert int(seg.BitsAllocated) == 1
        expected_bytes = (frames * rows * columns + 7) // 8
        assert len(raw) == expected_bytes + (expected_bytes % 2), 'BINARY pixel data is %d bytes, expected %d' % (len(raw), expected_bytes + expected_bytes % 2)
        bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder='little')[: frames * rows * columns]
        pixels = bits.reshape(frames, rows, columns)
        decoded = seg.pixel_array.reshape(frames, rows, columns)
        assert np.array_equal(decoded.astype(np.uint8), pixels), "pydicom's decoding differs from the bit-stream unpacking"
    else:
        assert int(seg.BitsAllocated) == 8
        pixels = np.frombuffer(raw, dtype=np.uint8)[: frames * rows * columns].reshape(frames, rows, columns)

    shared = seg.SharedFunctionalGroupsSequence[0]
    seg_iop = np.array([float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient])
    assert np.allclose(seg_iop, iop, atol=1e-4), 'orientation differs from the source'
    spacing = [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing]
    assert np.allclose(spacing, [float(v) for v in sources[0].PixelSpacing], atol=1e-4), 'pixel spacing differs from the source'

    labels = np.zeros((len(sources), rows, columns), dtype=np.uint8)
    per_segment = {}
    for f, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        ipp = np.array([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
        distances = np.linalg.norm(positions - ipp, axis=1)
        s = int(np.argmin(distances))
        assert distances[s] < 1e-3, 'frame %d lies %.4f mm from the nearest source slice' % (f + 1, distances[s])
        source_sop = str(item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        assert source_sop == str(sources[s].SOPInstanceUID), 'frame %d references %s but lies on %s' % (f + 1, source_sop, sources[s].SOPInstanceUID)
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        dims = [int(v) for v in item.FrameContentSequence[0].DimensionIndexValues]
        assert dims[0] == number, 'frame %d: dimension index %s does not start with its segment %d' % (f + 1, dims, number)
        on = pixels[f] >= 128 if kind == 'FRACTIONAL' else pixels[f] == 1
        clash = on & (labels[s] != 0)
        assert not clash.any(), 'frame %d overlaps another segment on slice %d' % (f + 1, s)
        labels[s][on] = number
        per_segment[number] = per_segment.get(number, 0) + 1

    with open(out_path, 'wb') as out:
        out.write(labels.tobytes())
    json.dump({
        'sopInstanceUIDs': [str(ds.SOPInstanceUID) for ds in sources],
        'rows': rows,
        'columns': columns,
        'frames': frames,
        'segmentationType': kind,
        'segments': [{'number': int(s.SegmentNumber), 'label': str(s.SegmentLabel)} for s in seg.SegmentSequence],
        'framesPerSegment': per_segment,
        'fractionalValues': sorted(int(v) for v in np.unique(pixels)) if kind == 'FRACTIONAL' else None,
        'studyInstanceUID': str(seg.StudyInstanceUID),
        'frameOfReferenceUID': str(seg.FrameOfReferenceUID),
    }, sys.stdout)


if __name__ == '__main__':
    main(*sys.argv[1:4])
