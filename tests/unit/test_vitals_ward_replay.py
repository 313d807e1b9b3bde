"""Maternal vitals simulator, ward schedule and the WFDB replayer (tiny records the test writes)."""

from __future__ import annotations

import numpy as np
import pytest
import wfdb

from detectors.meows import VitalsObservation as Obs
from detectors.meows import score_observation, vitals_trend
from stream.core.schemas import CtgPacket, GroundTruth, VitalsObservation, encode
from stream.core.settings import Settings
from stream.core.topics import TopicNames
from stream.core.validation import IngestLimits, Validator
from stream.sources.ctg_simulator import FS
from stream.sources.publishing import ctg_packets, device_range, time_base
from stream.sources.recordings import RecordingError, list_records, parse_header_comments, read_recording
from stream.sources.replay import recording_schedule
from stream.sources.vitals_simulator import NORMAL, TARGETS, VitalsScenario, simulate_vitals, standard_vitals_scenarios
from stream.sources.ward import assign_beds, bed_schedule, merge, scale_scenario

TOPICS = TopicNames("ctg.packets", "vitals.observations", "ingest.deadletter", "alerts", "sim.groundtruth")


def test_normal_vitals_stay_normal_and_trigger_nothing() -> None:
    sim = simulate_vitals(VitalsScenario("normal", 7200, 300), seed=4)
    assert sim.events == [] and len(sim.samples) == 24
    for name, (mean, sd) in NORMAL.items():
        values = np.array([s.values[name] for s in sim.samples])
        assert abs(values.mean() - mean) < 2 * sd
    reds = [score_observation(Obs(t=s.t, **s.values)).red for s in sim.samples]
    assert not any(reds)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_deteriorations_reach_red_triggers_inside_the_episode(name: str) -> None:
    sc = VitalsScenario(name, 3600, 120, episode=(1200, 3600))
    sim = simulate_vitals(sc, seed=1)
    (event,) = sim.events
    assert (event.kind, event.start_s, event.end_s) == (f"maternal_{name}", 1200, 3600)
    before = [score_observation(Obs(t=s.t, **s.values)) for s in sim.samples if s.t < 1200]
    late = [score_observation(Obs(t=s.t, **s.values)) for s in sim.samples if s.t > 1200 + 0.4 * 2400]
    assert not any(r.red for r in before)
    assert all(r.review for r in late), name
    expected_red = {"preeclampsia": "systolic_bp", "sepsis": "temperature_c", "haemorrhage": "heart_rate",
                    "hypoxaemia": "spo2"}[name]
    assert all(expected_red in r.red for r in late)


def test_haemorrhage_shows_the_trend_rule() -> None:
    sim = simulate_vitals(VitalsScenario("haemorrhage", 3600, 300, episode=(900, 3600)), seed=2)
    history = [Obs(t=s.t, **s.values) for s in sim.samples]
    kinds = {f.kind for f in vitals_trend(history)}
    assert kinds == {"maternal_deterioration_trend", "shock_index"}, kinds


def test_vitals_are_deterministic_and_unknown_scenarios_refused() -> None:
    a = simulate_vitals(standard_vitals_scenarios()[2], seed=9)
    assert a == simulate_vitals(standard_vitals_scenarios()[2], seed=9)
    with pytest.raises(ValueError):
        simulate_vitals(VitalsScenario("flu"))


def test_ward_schedule_is_ordered_valid_and_carries_ground_truth() -> None:
    beds = assign_beds(6, seed=1, duration_s=600)
    assert len({b.patient_id for b in beds}) == 6
    t0 = 1_800_000_000.0
    items = list(merge(bed_schedule(b, TOPICS, t0=t0, packet_s=2.0) for b in beds))
    offsets = [i.offset_s for i in items]
    assert offsets == sorted(offsets)
    validator = Validator(IngestLimits(max_age_s=1e9))
    kinds = {"ctg": 0, "vitals": 0, "groundtruth": 0}
    for item in items:
        kinds[item.record.kind] += 1
        if isinstance(item.record, (CtgPacket, VitalsObservation)):
            validator.validate(encode(item.record), now=t0 + 600)  # every record passes the ingest checks
            assert item.topic == (TOPICS.ctg if isinstance(item.record, CtgPacket) else TOPICS.vitals)
    assert kinds["ctg"] == 6 * 300 and kinds["vitals"] == 6 * 2
    truths = [i.record for i in items if isinstance(i.record, GroundTruth)]
    prolonged = [t for t in truths if t.event == "prolonged_deceleration"]
    assert prolonged and all(t0 <= t.start_ts < t.end_ts <= t0 + 600 for t in truths)
    assert {t.event for t in truths} >= {"maternal_preeclampsia", "maternal_sepsis"}


def test_scaled_scenarios_keep_their_shape() -> None:
    beds = assign_beds(10, duration_s=1800)
    prolonged = next(b.ctg for b in beds if b.ctg.name == "prolonged_deceleration")
    assert prolonged.prolonged == ((600.0, 720.0), (1350.0, 1500.0))
    assert scale_scenario(prolonged, 1800) is prolonged
    assert all(b.ctg.name == "normal" for b in assign_beds(3, mix="normal"))
    with pytest.raises(ValueError):
        assign_beds(1, mix="chaos")


def test_packets_blank_out_of_range_samples_and_count_them() -> None:
    values, blanked = device_range(np.array([140.0, 45.0, 0.0, np.nan, 250.0, 60.0]), 50, 240)
    assert values == [140.0, 0.0, 0.0, 0.0, 0.0, 60.0] and blanked == 3
    fhr = np.full(40, 140.0)
    packets = list(ctg_packets(patient_id="p", bed_id="b", device_id="d", fhr=fhr, uc=np.full(40, 150.0),
                               t0=100.0, packet_s=2.5))
    assert [o for o, _, _ in packets] == [0.0, 2.5, 5.0, 7.5]
    assert all(len(p.fhr) == 10 and max(p.uc) == 127.0 for _, p, _ in packets)
    assert time_base(3600, 1.0, now=5000.0) == 5000.0
    assert time_base(3600, 4.0, now=5000.0) == 5000.0 - 2700.0


def write_record(folder, name: str, fhr: np.ndarray, uc: np.ndarray, comments: list[str]) -> None:
    wfdb.wrsamp(name, fs=4, units=["bpm", "nd"], sig_name=["FHR", "UC"], p_signal=np.column_stack([fhr, uc]),
                fmt=["16", "16"], adc_gain=[100, 100], baseline=[0, 0], comments=comments, write_dir=str(folder))


def test_replayer_reads_a_tiny_wfdb_record(tmp_path) -> None:
    n = 4 * 120
    fhr = 140 + 5 * np.sin(np.arange(n) / 20)
    fhr[100:140] = 0.0
    fhr[200] = 30.0  # below the monitor range
    write_record(tmp_path, "9001", fhr, np.full(n, 20.0),
                 ["-- Outcome measures", "pH           7.02", "Apgar1       4", "Sex          2", "Pos. II.st.  300"])
    (tmp_path / "RECORDS").write_text("9001\n")
    assert list_records(tmp_path) == ["9001"]
    rec = read_recording("9001", tmp_path)
    assert rec.duration_s == 120 and rec.ph == 7.02 and rec.outcome["Apgar1"] == 4.0
    assert rec.outcome["Pos. II.st."] == 300.0
    assert np.allclose(rec.fhr[:100], fhr[:100], atol=0.01)
    items = list(recording_schedule(rec, 0, TOPICS, t0=1_800_000_000.0, packet_s=1.0))
    assert len(items) == 120
    packets = [i.record for i in items]
    assert packets[0].patient_id == "ctu-9001" and packets[0].bed_id == "bed-01"
    samples = np.concatenate([p.fhr for p in packets])
    assert (samples[100:140] == 0).all() and samples[200] == 0.0 and samples[0] == pytest.approx(fhr[0], abs=0.01)


def test_replayer_refuses_what_it_cannot_replay(tmp_path) -> None:
    with pytest.raises(RecordingError):
        list_records(tmp_path / "missing")
    with pytest.raises(RecordingError):
        list_records(tmp_path)
    wfdb.wrsamp("ecg", fs=4, units=["mV"], sig_name=["ECG"], p_signal=np.zeros((8, 1)), fmt=["16"],
                adc_gain=[100], baseline=[0], write_dir=str(tmp_path))
    with pytest.raises(RecordingError, match="not FHR and UC"):
        read_recording("ecg", tmp_path)


def test_header_comment_parsing() -> None:
    parsed = parse_header_comments(["----- Additional parameters", "-- Outcome measures", "pH           7.14",
                                    "BDecf        8.14", "Deliv. type  1", "Main diag.   0", "garbage"])
    assert parsed == {"pH": 7.14, "BDecf": 8.14, "Deliv. type": 1.0, "Main diag.": 0.0}


CTU = Settings().ctu_uhb_dir


@pytest.mark.skipif(not (CTU / "1001.hea").exists(), reason="CTU-UHB records not present in ../shared/data")
def test_replayer_on_real_ctu_uhb_record() -> None:
    rec = read_recording("1001", CTU)
    assert rec.fs == FS and rec.ph == pytest.approx(7.14) and rec.duration_s == 19200 / 4
    items = list(recording_schedule(rec, 0, TOPICS, t0=1_800_000_000.0, packet_s=1.0))
    assert len(items) == 4800
    validator = Validator(IngestLimits(max_age_s=1e9))
    for item in items:
        validator.validate(encode(item.record), now=1_800_000_000.0 + rec.duration_s)


T0 = 1.7e9  # a Unix time: packets are stamped with it


def _round(bed, round_no: int, t0: float) -> tuple[list[CtgPacket], list[VitalsObservation]]:  # noqa: ANN001
    items = list(bed_schedule(bed, TOPICS, t0=t0, packet_s=60.0, round_no=round_no))
    return ([i.record for i in items if isinstance(i.record, CtgPacket)],
            [i.record for i in items if isinstance(i.record, VitalsObservation)])


@pytest.mark.parametrize("index", range(10))
def test_a_demo_gone_live_continues_its_story(index: int) -> None:
    """The history (round 0) and the live part (round 1, as `run_ward(follow=True)` plays it) are one labour:
    no vital sign jumps by more than its observation noise allows at the hand-over, a deterioration still
    going on stays, and the CTG's maternal heart rate agrees with the vitals' within 10 bpm throughout."""
    bed = assign_beds(10, duration_s=1800.0)[index]
    history, live = _round(bed, 0, T0), _round(bed, 1, T0 + bed.ctg.duration_s)
    last, first = history[1][-1], live[1][0]
    for name, (_, sd) in NORMAL.items():
        jump = abs(getattr(first, name).value - getattr(last, name).value)
        assert jump <= 5 * sd * np.sqrt(2), (bed.vitals.name, name, getattr(last, name).value, getattr(first, name).value)
    for packets, observations in (history, live):
        mhr = {round(p.start_ts): float(np.mean(p.mhr)) for p in packets}
        for obs in observations:  # the CTG's maternal channel over the minute of each observation
            minute = min(mhr, key=lambda t: abs(t + 30 - obs.observed_ts))  # noqa: B023
            assert abs(mhr[minute] - obs.heart_rate.value) <= 10.0, (bed.vitals.name, obs.observed_ts)
    live_events = {e.event for e in live_truths(bed)}
    if bed.vitals.episode is not None:  # every standard deterioration runs to the end of the history
        assert f"maternal_{bed.vitals.name}" in live_events
    if bed.ctg.decel_span is not None and bed.ctg.decel_span[1] >= 0.9 * bed.ctg.duration_s:
        assert any(e.endswith("deceleration") for e in live_events), live_events


def live_truths(bed) -> list[GroundTruth]:  # noqa: ANN001
    items = bed_schedule(bed, TOPICS, t0=T0 + bed.ctg.duration_s, packet_s=60.0, round_no=1)
    return [i.record for i in items if isinstance(i.record, GroundTruth)]
