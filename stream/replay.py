"""Replaying real CTG recordings (CTU-UHB layout, WFDB) into the topics.

The CTU-UHB intrapartum CTG database (Chudáček et al., BMC Pregnancy and
Childbirth 2014;14:16) stores each record as ``NNNN.hea`` + ``NNNN.dat``:
FHR (bpm, 0 = signal loss) and UC at 4 Hz, with outcome measures in the
header comments (``#pH 7.14``, ``#Apgar1 6``, ``#Pos. II.st. 15000``...).
Records are read with the ``wfdb`` package from a local directory; only when
the user asks (``--physionet``) does ``wfdb`` fetch them from PhysioNet.

Each record becomes one patient (``ctu-NNNN``) on its own bed; samples
outside the monitor's range become 0 (signal loss) and are counted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import wfdb
from aiokafka import AIOKafkaProducer

from infra.launcher.errors import SetupError
from infra.topics import TopicNames
from stream.publishing import PublishReport, Scheduled, ctg_packets, merge, publish_paced, time_base
from stream.schemas import CTG_FS_HZ

log = logging.getLogger("ctgwatch.replay")

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
        raise SetupError(f"record {record} not found in {directory}", "check the directory and record name") from exc
    names = [n.upper() for n in rec.sig_name]
    if "FHR" not in names or "UC" not in names:
        raise SetupError(
            f"record {record} has channels {rec.sig_name}, not FHR and UC",
            "replay CTG records in the CTU-UHB layout (FHR and UC channels)",
        )
    if float(rec.fs) != CTG_FS_HZ:
        raise SetupError(f"record {record} is sampled at {rec.fs} Hz, not 4 Hz", "resample it to 4 Hz first")
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
        raise SetupError(
            f"recordings directory {directory} does not exist",
            "pass the directory holding NNNN.hea/NNNN.dat (CTU-UHB) or set CTGWATCH_CTU_UHB_DIR",
        )
    listing = directory / "RECORDS"
    if listing.exists():
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    else:
        names = sorted(p.stem for p in directory.glob("*.hea"))
    if not names:
        raise SetupError(f"no WFDB records (*.hea) in {directory}", "point the replayer at a CTU-UHB-style directory")
    return names


def recording_schedule(
    recording: CtgRecording, bed_index: int, topics: TopicNames, *, t0: float, packet_s: float
) -> Iterator[Scheduled]:
    blanked = 0
    patient = f"ctu-{recording.record_id}"
    for seq, (offset, packet, n_blank) in enumerate(
        ctg_packets(
            patient_id=patient, bed_id=f"bed-{bed_index + 1:02d}", device_id=f"replay-{recording.record_id}",
            fhr=recording.fhr, uc=recording.uc, t0=t0, packet_s=packet_s,
        )
    ):
        blanked += n_blank
        yield Scheduled(offset + len(packet.fhr) / CTG_FS_HZ, bed_index * 10_000_000 + seq, topics.ctg, packet)
    if blanked:
        log.info("%s: %d samples outside the monitor range replayed as signal loss", patient, blanked)


async def replay(
    producer: AIOKafkaProducer,
    topics: TopicNames,
    recordings: list[CtgRecording],
    *,
    speed: float,
    packet_s: float,
) -> PublishReport:
    """All recordings start together, one bed each, paced by ``speed``."""
    t0 = time_base(max(r.duration_s for r in recordings), speed)
    schedule = merge(
        recording_schedule(r, i, topics, t0=t0, packet_s=packet_s) for i, r in enumerate(recordings)
    )
    return await publish_paced(producer, schedule, speed=speed)
