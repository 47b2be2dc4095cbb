"""Where the SAP artefacts the simulator reads at runtime live (copies inside the package)."""

from __future__ import annotations

from pathlib import Path

SPECS_DIR = Path(__file__).resolve().parent / "specs"

JOURNAL_ENTRY_WSDL = SPECS_DIR / "JOURNALENTRYCREATEREQUESTCONFI.wsdl"
OPLACCTGDOCITEMCUBE_EDMX = SPECS_DIR / "API_OPLACCTGDOCITEMCUBE_SRV.edmx"
MATERIAL_DOCUMENT_EDMX = SPECS_DIR / "API_MATERIAL_DOCUMENT_SRV.edmx"


def spec_path(name: str) -> Path:
    """Path of a file in ``sapsim/specs``; raises FileNotFoundError if it is not there."""
    path = SPECS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(path)
    return path
