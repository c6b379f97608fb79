#!/usr/bin/env python3
"""The peer for the parse benchmark: a DICOM study loader of the MONAI Deploy kind.

It reads every file with pydicom, groups instances by series, drops slices without
position/orientation, sorts them by distance along the slice normal, stacks the rescaled
pixel arrays into float32 volumes and saves each volume with numpy, which is what MONAI
Deploy's DICOMDataLoaderOperator + DICOMSeriesToVolumeOperator do before inference.

usage: pydicom_loader.py <dicom-dir> <out-dir>
"""
import os
import sys

import numpy as np
import pydicom


def main(src, out):
    os.makedirs(out, exist_ok=True)
    series = {}
    for root, _dirs, files in os.walk(src):
        for name in files:
            try:
                ds = pydicom.dcmread(os.path.join(root, name))
            except Exception:
                continue
            if "PixelData" not in ds:
                continue
            series.setdefault(ds.SeriesInstanceUID, []).append(ds)
    written = 0
    for uid, instances in series.items():
        slices = []
        for ds in instances:
            iop = getattr(ds, "ImageOrientationPatient", None)
            ipp = getattr(ds, "ImagePositionPatient", None)
            if iop is None or ipp is None:
                continue
            normal = np.cross(np.array(iop[:3], float), np.array(iop[3:], float))
            slices.append((float(np.dot(normal, np.array(ipp, float))), ds))
        if not slices:
            continue
        slices.sort(key=lambda item: item[0])
        shape = slices[0][1].pixel_array.shape
        if any(ds.pixel_array.shape != shape for _d, ds in slices):
            continue
        volume = np.stack([
            ds.pixel_array.astype(np.float32) * float(getattr(ds, "RescaleSlope", 1) or 1)
            + float(getattr(ds, "RescaleIntercept", 0) or 0)
            for _d, ds in slices
        ])
        np.save(os.path.join(out, uid + ".npy"), volume)
        written += 1
    print(f"{written} volumes")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
