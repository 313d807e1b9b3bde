"""Reading CTG recordings in the CTU-UHB layout (WFDB), with their outcomes.

The CTU-UHB intrapartum CTG database (Chudáček et al., BMC Pregnancy and
Childbirth 2014;14:16) stores each record as ``NNNN.hea`` + ``NNNN.dat``:
FHR (bpm, 0 = signal loss) and UC at 4 Hz, with outcome measures in the
header comments (``#pH 7.14``, ``#Apgar1 6``, ``#Pos. II.st. 15000``...).
Records are read with the ``wfdb`` package from a local directory; only when
the user asks (``physionet=True``) does ``wfdb`` fetch them from PhysioNet.

This module is the small interface through which training and evaluation
take recordings: it reads files and knows no broker. A recording that cannot
be read raises :class:`RecordingError`; the CLI turns it into an operator's
message with the fix.

Outcome definitions: "normal outcome" is umbilical-artery pH >= 7.20 and
Apgar at 5 min >= 7, the usual normal range in the CTU-UHB literature
(Chudáček et al. 2014); acidaemia is pH < 7.05 (docs/CLINICAL.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import wfdb

from stream.core.errors import SetupError
from stream.core.schemas import CTG_FS_HZ

NORMAL_PH = 7.20
NORMAL_APGAR5 = 7.0
ACIDAEMIA_PH = 7.05


class RecordingError(SetupError):
    """A recording or recordings directory that cannot be read, with what to do about it."""


PHYSIONET_DB = "ctu-uhb-ctgdb"
_COMMENT = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 .()/%-]*?)\s{2,}(\S.*?)\s*$")


@dataclass(frozen=True)
class CtgRecording:
    record_id: str
    fs: float
    fhr: np.ndarray
    uc: np.ndarray
    outcome: dict[str, float | str] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return len(self.fhr) / self.fs

    @property
    def ph(self) -> float | None:
        value = self.outcome.get("pH")
        return float(value) if isinstance(value, float) else None


def parse_header_comments(comments: list[str]) -> dict[str, float | str]:
    """``'pH           7.14'`` -> ``{'pH': 7.14}``; section titles are skipped."""
    out: dict[str, float | str] = {}
    for line in comments:
        if line.startswith("-"):
            continue
        m = _COMMENT.match(line)
        if not m:
            continue
        key, value = m.group(1).strip(), m.group(2).strip()
        try:
            out[key] = float(value)
        except ValueError:
            out[key] = value
    return out


def read_recording(record: str, directory: Path | None = None, *, physionet: bool = False) -> CtgRecording:
    """One record by name, from ``directory`` or (only if asked) from PhysioNet."""
    try:
        if physionet:
            rec = wfdb.rdrecord(record, pn_dir=PHYSIONET_DB)
        else:
            assert directory is not None
            rec = wfdb.rdrecord(str(directory / record))
    except FileNotFoundError as exc:
        raise RecordingError(f"record {record} not found in {directory}", "check the directory and record name") from exc
    names = [n.upper() for n in rec.sig_name]
    if "FHR" not in names or "UC" not in names:
        raise RecordingError(
            f"record {record} has channels {rec.sig_name}, not FHR and UC",
            "replay CTG records in the CTU-UHB layout (FHR and UC channels)",
        )
    if float(rec.fs) != CTG_FS_HZ:
        raise RecordingError(f"record {record} is sampled at {rec.fs} Hz, not 4 Hz", "resample it to 4 Hz first")
    signal = np.nan_to_num(rec.p_signal.astype(float), nan=0.0)
    return CtgRecording(
        record_id=str(rec.record_name),
        fs=float(rec.fs),
        fhr=signal[:, names.index("FHR")],
        uc=signal[:, names.index("UC")],
        outcome=parse_header_comments(list(rec.comments)),
    )


def list_records(directory: Path) -> list[str]:
    """Record names: the ``RECORDS`` file if present, else every ``*.hea``."""
    if not directory.is_dir():
        raise RecordingError(
            f"recordings directory {directory} does not exist",
            "pass the directory holding NNNN.hea/NNNN.dat (CTU-UHB) or set CTGWATCH_CTU_UHB_DIR",
        )
    listing = directory / "RECORDS"
    if listing.exists():
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    else:
        names = sorted(p.stem for p in directory.glob("*.hea"))
    if not names:
        raise RecordingError(f"no WFDB records (*.hea) in {directory}", "point the replayer at a CTU-UHB-style directory")
    return names
