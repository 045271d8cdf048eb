"""Who made a DICOM object: the General Equipment and the algorithm identification every written object carries,
and the series numbers of the new series (one new series per object type, in the source study).

Manufacturer "UQSegmentation", Manufacturer's Model Name = the model id, Software Versions = (engine version, model
version); the AI algorithm (CID 7162) is named by the model id and version (DICOM PS3.3 C.8.20.2 Segment Description,
Algorithm Identification Sequence).
"""

from __future__ import annotations

from dataclasses import dataclass

MANUFACTURER = "UQSegmentation"
DEVICE_SERIAL_NUMBER = "none"
#: series numbers of the new series (one per object type) — high, so that they sort after the source series
SERIES_NUMBERS = {"segmentation": 9101, "uncertainty": 9102, "measurements": 9103}


@dataclass(frozen=True)
class Producer:
    model_id: str
    model_version: str
    engine_version: str

    @classmethod
    def for_card(cls, card) -> "Producer":
        from uqseg import __version__

        return cls(str(card.id), str(card.version), str(__version__))

    def equipment(self) -> dict:
        """The keyword arguments highdicom's SOP classes take for the General Equipment module."""
        return {"manufacturer": MANUFACTURER, "manufacturer_model_name": self.model_id[:64],
                "software_versions": [f"uqseg {self.engine_version}"[:64], f"{self.model_id} {self.model_version}"[:64]],
                "device_serial_number": DEVICE_SERIAL_NUMBER}

    def algorithm(self):
        """highdicom AlgorithmIdentificationSequence: an artificial-intelligence algorithm, the model id and version."""
        import highdicom as hd
        from pydicom.sr.codedict import codes

        return hd.AlgorithmIdentificationSequence(name=self.model_id[:64], version=self.model_version[:64],
                                                  family=codes.cid7162.ArtificialIntelligence)
