"""A PACS round trip over DICOM networking (DIMSE, PS3.7 / PS3.4), with pynetdicom: fetch a study's image series
(C-FIND of its series, C-GET of those a task reads) and store a case's DICOM objects (C-STORE).

A peer is written ``AE@host:port`` (e.g. ``ORTHANC@127.0.0.1:4242``); this application's AE title is `AE_TITLE`
(the peer must know it for C-FIND / C-GET: in Orthanc, an entry of ``DicomModalities``). Every failure is a
`PacsError` whose text is one line, ``<peer>: <reason>``:
- the server is down (TCP connection refused, host unreachable), or does not answer within the timeout (at TCP
  connect, association or any DIMSE response): the reason says which;
- the association is rejected (wrong called AE title, unknown calling AE, ...): with the peer's result and reason;
- a C-FIND / C-GET that ends with a failure status, or a study without image series a task reads;
- a C-STORE that fails for any instance: the objects that arrived (with their SOP Instance UIDs) and those that did
  not (with the status or why they were not sent) — DIMSE has no transaction, so this is what "nothing
  half-stored" can mean on the wire: the caller knows exactly which objects are on the server.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path

AE_TITLE = "UQSEG"
DEFAULT_TIMEOUT_S = 30.0

logging.getLogger("pynetdicom").setLevel(logging.CRITICAL + 1)  # its errors become our one line


class PacsError(Exception):
    """One line: ``<peer>: <reason>``."""


@dataclass(frozen=True)
class Peer:
    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def parse_peer(text: str) -> Peer:
    """``AE@host:port`` → Peer; PacsError (naming the text) when it is not of that form."""
    ae, at, address = str(text).partition("@")
    host, colon, port = address.rpartition(":")
    if not (at and colon and ae.strip() and host and port.isdigit() and 0 < int(port) < 65536 and len(ae) <= 16):
        raise PacsError(f"{text}: not a DICOM peer of the form AE@host:port (AE title at most 16 characters)")
    return Peer(ae.strip(), host.strip("[]"), int(port))


def _ae(timeout: float):
    try:
        from pynetdicom import AE
    except ImportError:
        raise PacsError("pynetdicom is not installed: pip install 'uqseg[dicom]' for --from-pacs / --to-pacs") \
            from None

    ae = AE(ae_title=AE_TITLE)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    return ae


def _check_reachable(peer: Peer, timeout: float) -> None:
    try:
        with socket.create_connection((peer.host, peer.port), timeout=timeout):
            pass
    except socket.timeout:
        raise PacsError(f"{peer}: no answer within {timeout:g} s (TCP connect timed out)") from None
    except OSError as e:
        raise PacsError(f"{peer}: server down or unreachable ({e.strerror or e})") from None


def _associate(ae, peer: Peer, timeout: float, **kwargs):
    _check_reachable(peer, timeout)
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title, **kwargs)
    if assoc.is_established:
        return assoc
    if assoc.is_rejected:
        rj = assoc.acceptor.primitive
        why = {1: "no reason given", 2: "application context not supported", 3: "calling AE title not recognised",
               7: "called AE title not recognised"}.get(getattr(rj, "diagnostic", None), "see the peer's log")
        raise PacsError(f"{peer}: association refused ({why}; result {getattr(rj, 'result', '?')}, "
                        f"source {getattr(rj, 'result_source', '?')})")
    raise PacsError(f"{peer}: no answer within {timeout:g} s (association not established)")


# -------------------------------------------------------------------------------------------------------- C-GET
#: storage SOP classes of the images a task can read (C-GET needs an SCP role for each)
FETCH_SOP_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # Digital X-Ray Image Storage - For Processing
    "1.2.840.10008.5.1.4.1.1.1.2",  # Digital Mammography X-Ray Image Storage - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.2.1",  # Digital Mammography X-Ray Image Storage - For Processing
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
)


#: the modalities of the series a task reads; a study's other series (SEG, SR, OT parametric maps, PR, ...) are
#: not fetched — C-GET of a whole study fails on a peer when it holds an object this end has no context for
FETCH_MODALITIES = ("CT", "CR", "DX", "MG")


def fetch_study(peer: Peer | str, study_uid: str, folder: Path, timeout: float = DEFAULT_TIMEOUT_S) -> list[Path]:
    """Fetch the image series of study `study_uid` (C-FIND of its series, then C-GET of each series whose modality is
    in FETCH_MODALITIES) into `folder`/<SeriesInstanceUID>/<SOPInstanceUID>.dcm; returns the series folders.
    PacsError on any failure, or when the study has no such series."""
    peer = parse_peer(peer) if isinstance(peer, str) else peer
    ae = _ae(timeout)
    from pydicom.dataset import Dataset
    from pynetdicom import build_role, evt
    from pynetdicom.sop_class import (StudyRootQueryRetrieveInformationModelFind,
                                      StudyRootQueryRetrieveInformationModelGet)

    from uqseg.io.write import write_dicom

    folder = Path(folder)
    received: list[Path] = []

    def on_store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        series = folder / str(ds.SeriesInstanceUID)
        series.mkdir(parents=True, exist_ok=True)
        path = series / f"{ds.SOPInstanceUID}.dcm"
        write_dicom(path, ds)
        received.append(path)
        return 0x0000

    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    for uid in FETCH_SOP_CLASSES:
        ae.add_requested_context(uid)
    roles = [build_role(uid, scp_role=True) for uid in FETCH_SOP_CLASSES]
    assoc = _associate(ae, peer, timeout, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        query = Dataset()
        query.QueryRetrieveLevel = "SERIES"
        query.StudyInstanceUID = study_uid
        query.SeriesInstanceUID = ""
        query.Modality = ""
        series = []
        for status, found in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
            if status is None:
                raise PacsError(f"{peer}: no answer within {timeout:g} s during C-FIND of study {study_uid}")
            if found is not None and int(status.Status) in (0xFF00, 0xFF01) \
                    and str(found.get("Modality", "")) in FETCH_MODALITIES:
                series.append(str(found.SeriesInstanceUID))
        for uid in series:
            query = Dataset()
            query.QueryRetrieveLevel = "SERIES"
            query.StudyInstanceUID = study_uid
            query.SeriesInstanceUID = uid
            final = None
            for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
                if status is None:  # the peer went silent or the association dropped
                    raise PacsError(f"{peer}: no answer within {timeout:g} s during C-GET of series {uid} "
                                    f"({len(received)} instances received)")
                final = int(status.Status)
            if final not in (0x0000, 0xB000):
                raise PacsError(f"{peer}: C-GET of series {uid} of study {study_uid} ended with status "
                                f"0x{final if final is not None else 0:04X} after {len(received)} instances")
    finally:
        if assoc.is_established:
            assoc.release()
    if not received:
        raise PacsError(f"{peer}: study {study_uid} has no {'/'.join(FETCH_MODALITIES)} images (unknown study?)")
    return sorted({p.parent for p in received})


# ------------------------------------------------------------------------------------------------------ C-STORE
@dataclass
class StoreReport:
    peer: Peer
    stored: list = field(default_factory=list)  # [(file name, SOP Instance UID)]
    failed: list = field(default_factory=list)  # [(file name, reason)]

    def line(self) -> str:
        ok = ", ".join(f"{n} ({uid})" for n, uid in self.stored) or "none"
        bad = ", ".join(f"{n} ({why})" for n, why in self.failed)
        return f"{self.peer}: stored {len(self.stored)} of {len(self.stored) + len(self.failed)} objects; " \
               f"arrived: {ok}; not stored: {bad}"


def store_files(peer: Peer | str, files: list, timeout: float = DEFAULT_TIMEOUT_S) -> StoreReport:
    """C-STORE each DICOM file in `files` (in order) to `peer`; PacsError when the association cannot be made, or when
    any object was not stored (the line lists the objects that arrived and those that did not)."""
    import pydicom

    peer = parse_peer(peer) if isinstance(peer, str) else peer
    ae = _ae(timeout)
    datasets = [(Path(f), pydicom.dcmread(f)) for f in files]
    for sop_class in dict.fromkeys(str(ds.SOPClassUID) for _, ds in datasets):
        ae.add_requested_context(sop_class)
    report = StoreReport(peer)
    assoc = _associate(ae, peer, timeout)
    try:
        for path, ds in datasets:
            if not assoc.is_established:
                report.failed.append((path.name, "not sent: the association ended"))
                continue
            try:
                status = assoc.send_c_store(ds)
            except (ValueError, RuntimeError) as e:  # no accepted presentation context, ...
                report.failed.append((path.name, f"not sent: {e}"))
                continue
            code = None if status is None or "Status" not in status else int(status.Status)
            if code is None:
                report.failed.append((path.name, f"no answer within {timeout:g} s"))
            elif code in (0x0000, 0xB000, 0xB007, 0xB006):  # success or warning: stored
                report.stored.append((path.name, str(ds.SOPInstanceUID)))
            else:
                report.failed.append((path.name, f"refused with status 0x{code:04X}"))
    finally:
        if assoc.is_established:
            assoc.release()
    if report.failed:
        raise PacsError(report.line())
    return report
