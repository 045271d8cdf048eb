"""The README's DICOM-out picture, rendered from the objects as read back (not from the engine's arrays):
``python Testing/make_dicom_screenshot.py [OUT.png]`` predicts with --dicom on the shipped CT series (ct-organs) and
the shipped CBIS-DDSM MLO (mammo-pectoral), reads segmentation.dcm with highdicom and uncertainty.dcm with pydicom,
and draws each over its source DICOM: the SEG outline and the Parametric Map (its Real World Value Mapping's units
on the colour bar). Default OUT: Resources/Screenshots/dicom-readback.png."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(out: Path) -> None:
    import highdicom as hd
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pydicom

    from dicom_checks import pm_values
    from uqseg.io.load import load_image
    from uqseg.tasks.run import run_cases

    samples = REPO / "Resources" / "SampleData"
    work = Path(tempfile.mkdtemp(prefix="uqseg-dicom-shot-"))
    panels = []
    for task, source, options in (("ct-organs", samples / "ct-abdomen" / "dicom", {"samples": 30}),
                                  ("mammo-pectoral", samples / "mammo-mlo" / "mlo.dcm", {})):
        report = run_cases(task, [str(source)], work / task, device="cpu", dicom=True, **options)
        case = work / task / report.summaries[0]["case"]
        image = load_image(source, ndim=3 if source.is_dir() else 2)
        files = image.meta["files"] if source.is_dir() else [str(source)]
        uids = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files]
        shape = (len(files),) + tuple(image.shape[-2:])
        seg = hd.seg.segread(case / "segmentation.dcm")
        labels = np.zeros(shape, np.int32)
        for f, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
            groups = item if "SegmentIdentificationSequence" in item else seg.SharedFunctionalGroupsSequence[0]
            number = int(groups.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
            ref = (item if "DerivationImageSequence" in item else seg.SharedFunctionalGroupsSequence[0]) \
                .DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
            labels[uids.index(ref)][seg.pixel_array.reshape((-1,) + shape[1:])[f] > 0] = number
        pm = pydicom.dcmread(case / "uncertainty.dcm")
        values = pm_values(pm, uids, shape)
        rwvm = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
        k = int(np.argmax(values.reshape(len(files), -1).sum(1))) if len(files) > 1 else 0
        grey = image.array if image.ndim == 2 else image.array[k]
        panels.append((task, grey, labels[k], values[k], rwvm, [d.SegmentLabel for d in seg.SegmentSequence]))
    fig, axes = plt.subplots(1, 2, figsize=(12, 6.2))
    for ax, (task, grey, lab, val, rwvm, names) in zip(axes, panels):
        lo, hi = np.percentile(grey, [1, 99])
        ax.imshow(grey, cmap="gray", vmin=lo, vmax=hi)
        shown = np.ma.masked_where(val <= 0, val)
        im = ax.imshow(shown, cmap="inferno", alpha=0.75)
        ax.contour(lab > 0, levels=[0.5], colors=["cyan"], linewidths=0.8)
        unit = rwvm.MeasurementUnitsCodeSequence[0].CodeMeaning
        fig.colorbar(im, ax=ax, fraction=0.04, label=f"{rwvm.LUTExplanation} [{unit}]")
        ax.set_title(f"{task}: SEG ({', '.join(names)}) + Parametric Map, read back", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "Resources" / "Screenshots" / "dicom-readback.png")
