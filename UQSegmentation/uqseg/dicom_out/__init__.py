"""DICOM out: a case's results as DICOM objects that a PACS stores and a viewer shows beside the source images.

- `source.py`: the source DICOM instances of a case (refuses inputs that are not DICOM: no invented identity);
- `codes.py`: the coded terminology of the segments (SNOMED CT, as in the `.seg.nrrd` terminology entries);
- `producer.py`: who made an object (manufacturer, model, algorithm identification);
- `seg.py`: `segmentation.dcm`, a DICOM Segmentation (highdicom), one segment per structure;
- `parametric_map.py`: `uncertainty.dcm`, a Parametric Map of the per-pixel / per-voxel uncertainty;
- `sr.py`: `measurements.dcm`, a TID 1500 measurement report with the pectoral boundary / cxr contours and their σ;
- `write_case.py`: the one function the batch driver calls to write them into a case's staging folder;
- `pacs.py`: fetch a study from a DICOM peer (C-GET) and store the objects (C-STORE), with pynetdicom.

highdicom (an engine requirement) and pynetdicom (the `dicom` extra) are imported only here, inside functions.
"""
