"""The false-signal model's inputs and read-out, and its verdict in the signal-quality step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detectors.quality import ModelVerdict, assess_quality
from detectors.scoring import SampleConfusion
from models.serving.false_signal_features import (
    FEATURES,
    MHR_VALID,
    FalseSignalThresholds,
    false_signal_inputs,
    labels_per_second,
    to_samples,
    window_inputs,
)
from models.training.false_signal import FalseSignalConfig, build_net, predict_live, receptive_half_s
from models.training.false_signal_data import split_names


def test_features_show_the_maternal_rate_and_a_doubling() -> None:
    n = 4 * 60
    fhr = np.full(n, 140.0)
    fhr[4 * 20 : 4 * 40] = 85.0  # the mother's rate
    fhr[4 * 40 : 4 * 50] = 170.0  # her rate doubled
    fhr[4 * 50 :] = 0.0  # lost
    x = false_signal_inputs(fhr, np.full(n, 85.0), np.full(n, 20.0), "fecg")
    col = {name: i for i, name in enumerate(FEATURES)}
    assert x.shape == (60, len(FEATURES)) and x.dtype == np.float32
    assert np.allclose(x[25:35, col["fhr_minus_mhr"]], 0.0) and np.allclose(x[25:35, col["log2_fhr_over_mhr"]], 0.0)
    assert np.allclose(x[42:48, col["log2_fhr_over_mhr"]], 1.0)
    assert np.all(x[50:, col["fhr_valid"]] == 0) and np.all(x[50:, col["fhr"]] == 0)
    assert x[20, col["fhr_step"]] < -2  # the jump into the maternal stretch
    assert np.all(x[:, col["sensor_fecg"]] == 1) and np.all(x[:, col["sensor_known"]] == 1)
    unknown = false_signal_inputs(fhr, None, None, "unknown")
    assert np.all(unknown[:, col["mhr_valid"]] == 0) and np.all(unknown[:, col["sensor_known"]] == 0)


def test_labels_per_second_and_back_to_samples() -> None:
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0, -1, -1, -1, 1], dtype=np.int8)
    assert labels_per_second(labels).tolist() == [1, 0, -1]
    assert to_samples(np.array([1, 0, 1]), 14).tolist() == [1] * 4 + [0] * 4 + [1] * 6
    padded = window_inputs(np.ones((5, 3), np.float32), 8)
    assert padded.shape == (8, 3) and not padded[:3].any() and padded[3:].all()


def test_split_is_by_record_and_stratified_by_subset() -> None:
    names = [f"DopMHRTrain{i:04d}.fhrm" for i in range(50)] + [f"ScalpECGTrain{i:04d}.fhrm" for i in range(20)]
    split = split_names(names, seed=0)
    assert sorted(sum(split.values(), [])) == sorted(names)
    assert sum(n.startswith("Scalp") for n in split["validation"]) == 4  # 20% of each subset
    assert split == split_names(names, seed=0) and split != split_names(names, seed=1)


def test_live_read_out_equals_the_streams_longer_window_for_a_convolution_network() -> None:
    """predict_live scores only context + cadence seconds per scoring; for a convolution-only network that
    is exactly what the stream's 30-min window gives for the newest minute."""
    cfg = FalseSignalConfig(net={"width": 8, "kernel": 3, "dilations": [1, 2, 4, 8], "gru_hidden": 0})
    torch.manual_seed(0)
    model = build_net(cfg).eval()
    rng = np.random.default_rng(0)
    features = rng.normal(size=(900, len(FEATURES))).astype(np.float32)
    live = predict_live(model, features, cadence_s=60, context_s=receptive_half_s(cfg))
    with torch.no_grad():
        for end in (120, 480, 900):
            for window_s in (600, 1800):  # the served 10-min window, and a longer one
                stream_window = torch.from_numpy(window_inputs(features[:end], window_s)[None])
                full = model(stream_window)[0].numpy()
                assert np.allclose(live[end - 60 : end], full[-60:], atol=1e-5)


def test_live_read_out_with_a_held_back_verdict_takes_each_second_from_the_first_scoring_a_minute_past_it() -> None:
    """With ``delay_s``, the scoring at ``end`` first judges the seconds ``end - 60 - delay_s`` to
    ``end - delay_s`` of the stream's own window (the newest ``delay_s`` wait for the next scoring); the
    scoring at the recording's end judges what is left."""
    cfg = FalseSignalConfig(net={"width": 8, "kernel": 3, "dilations": [1, 2, 4, 8], "gru_hidden": 0})
    torch.manual_seed(0)
    model = build_net(cfg).eval()
    features = np.random.default_rng(1).normal(size=(930, len(FEATURES))).astype(np.float32)
    live = predict_live(model, features, cadence_s=60, context_s=receptive_half_s(cfg), delay_s=60)
    undelayed = predict_live(model, features, cadence_s=60, context_s=receptive_half_s(cfg))
    with torch.no_grad():
        for end in (120, 480, 900):
            full = model(torch.from_numpy(window_inputs(features[:end], 600)[None]))[0].numpy()
            assert np.allclose(live[end - 120 : end - 60], full[-120:-60], atol=1e-5)
        last = model(torch.from_numpy(window_inputs(features, 600)[None]))[0].numpy()
    assert np.allclose(live[840:], last[-90:], atol=1e-5)  # 900 - 60 to the end: from the last scoring
    assert not np.allclose(live[420:480], undelayed[420:480], atol=1e-3)  # a minute more of future changes them


def _capture_trace(seconds: int = 600, capture: tuple[int, int] = (300, 420)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    fhr = 140 + 3 * np.sin(np.arange(4 * seconds) / 40) + rng.normal(0, 1.0, 4 * seconds)
    t = np.arange(4 * seconds) / 4.0
    mhr = 85 + 8 * np.sin(2 * np.pi * t / 120) + rng.normal(0, 1.0, 4 * seconds)  # the mother's rate moves
    a, b = 4 * capture[0], 4 * capture[1]
    fhr[a:b] = mhr[a:b] + rng.normal(0, 1.0, b - a)
    return fhr, mhr


def test_the_models_verdict_replaces_the_rules_where_it_judged() -> None:
    fhr, mhr = _capture_trace()
    rules = assess_quality(fhr, mhr=mhr)
    assert rules.maternal[4 * 320 : 4 * 400].all()  # the rules see the capture
    verdict = np.full(fhr.size, np.nan)
    verdict[: 4 * 500] = 0.0  # the model judged the first 500 s: all fetal
    report = assess_quality(fhr, mhr=mhr, model_verdict=ModelVerdict(verdict, version="3", threshold=0.6))
    assert not report.maternal[: 4 * 500].any() and not report.model_false.any()
    assert report.model_judged[: 4 * 500].all() and not report.model_judged[4 * 500 :].any()
    verdict[4 * 300 : 4 * 420] = 1.0  # now it calls the capture false
    report = assess_quality(fhr, mhr=mhr, model_verdict=ModelVerdict(verdict, version="3", threshold=0.6))
    assert report.model_false[4 * 300 : 4 * 420].all() and not report.valid[4 * 300 : 4 * 420].any()
    (finding,) = [f for f in report.findings if f.kind == "false_signal"]
    assert "ctg_false_signal v3" in finding.rule and finding.values["mhr_median"] == pytest.approx(85, abs=1)
    assert "not fetal" in finding.sentence and finding.duration_s == pytest.approx(120, abs=1)
    assert not [f for f in report.findings if f.kind == "maternal_hr_capture"]


def test_samples_the_model_has_not_judged_keep_the_rules() -> None:
    fhr, mhr = _capture_trace(capture=(500, 600))
    verdict = np.full(fhr.size, np.nan)
    verdict[: 4 * 450] = 0.0  # the last scoring was at 450 s; the capture began after it
    report = assess_quality(fhr, mhr=mhr, model_verdict=ModelVerdict(verdict))
    assert report.maternal[4 * 520 : 4 * 590].all()
    assert [f.kind for f in report.findings if f.kind in ("maternal_hr_capture", "false_signal")] == ["maternal_hr_capture"]


def test_sample_confusion_counts_false_minutes() -> None:
    c = SampleConfusion()
    predicted = np.zeros(240 * 3, bool)
    labels = np.zeros(240 * 3, np.int8)
    labels[:480] = 1
    predicted[:300] = True
    c.add(predicted, labels == 1)
    c.add_minutes(predicted, labels)
    assert (c.tp, c.fn, c.fp) == (300, 180, 0) and (c.false_minutes, c.false_minutes_caught) == (2, 1)
    assert c.as_dict()["false_minutes_caught"] == 0.5


def test_a_false_minute_needs_a_trace_to_catch_and_lost_samples_called_false_catch_nothing() -> None:
    labels = np.ones(240 * 3, np.int8)  # the experts marked three minutes false
    signal = np.ones(240 * 3, bool)
    signal[240:] = False  # the second minute lost, the third two-thirds lost
    signal[480:560] = True
    predicted = ~signal  # a judge that calls only the lost samples false
    c = SampleConfusion()
    c.add_minutes(predicted, labels, signal)
    assert (c.false_minutes, c.false_minutes_caught) == (1, 0)  # only the minute with a trace counts, not caught
    c.add_minutes(signal.copy(), labels, signal)
    assert (c.false_minutes, c.false_minutes_caught) == (2, 1)


def test_running_verdict_takes_the_newest_scoring_and_keeps_older_seconds() -> None:
    from stream.worker.false_signal import KeptVerdict

    t7, t8 = FalseSignalThresholds.of(0.7), FalseSignalThresholds.of(0.8)
    first = KeptVerdict(100.0, np.array([False] * 600), "2", t7)
    second = KeptVerdict(160.0, np.array([True] * 600), "2", t7)  # one minute later, overlapping 540 s
    merged = first.merged(second, keep_s=3600)
    assert merged.t0 == 100.0 and merged.false.size == 660
    assert not merged.false[:60].any() and merged.false[60:].all()
    capped = merged.merged(KeptVerdict(220.0, np.array([False] * 600), "3", t8), keep_s=650)
    assert capped.false.size == 650 and capped.t0 == 170.0 and capped.version == "3"
    assert capped.false[:50].all() and not capped.false[50:].any()
    gap = merged.merged(KeptVerdict(2000.0, np.array([True] * 10), "2", t7), keep_s=3600)
    assert gap.t0 == 2000.0 and gap.false.size == 10  # a gap restarts the verdict


def test_the_stream_holds_back_the_verdict_on_the_newest_seconds_of_each_window_for_the_rules() -> None:
    """The served config's ``verdict_delay_s``: a scoring's newest 60 s get no model verdict (NaN: the rules
    judge them) until the next scoring, which judges them with a minute of their future."""
    from models.serving.triton_client import Scored
    from stream.worker.false_signal import FalseSignalJudge

    judge = FalseSignalJudge(scorer=None)  # type: ignore[arg-type]
    window = np.zeros((600, len(FEATURES)), np.float32)
    judge.keep("bed-1", 0.0, window, 600, Scored(1.0, np.ones(600, np.float32), 0.5, "7", 60.0))
    first = judge.verdict_for("bed-1", 0.0, 4 * 600, 4.0)
    assert first is not None
    assert (first.false[: 4 * 540] == 1).all() and np.isnan(first.false[4 * 540 :]).all()
    judge.keep("bed-1", 60.0, window, 600, Scored(0.0, np.zeros(600, np.float32), 0.5, "7", 60.0))
    second = judge.verdict_for("bed-1", 0.0, 4 * 660, 4.0)
    assert second is not None
    assert (second.false[: 4 * 60] == 1).all() and (second.false[4 * 60 : 4 * 600] == 0).all()
    assert np.isnan(second.false[4 * 600 :]).all()
    judge.keep("bed-2", 0.0, window, 600, Scored(1.0, np.ones(600, np.float32), 0.5, "5"))  # no delay: all of it
    whole = judge.verdict_for("bed-2", 0.0, 4 * 600, 4.0)
    assert whole is not None and (whole.false == 1).all()


def test_a_second_without_a_maternal_value_needs_the_higher_threshold_to_be_called_false() -> None:
    """From v8: the same probability is "not fetal" beside a maternal HR and fetal without one."""
    features = np.zeros((4, len(FEATURES)), np.float32)
    features[:2, MHR_VALID] = 1.0  # a maternal value in the first two seconds only
    thresholds = FalseSignalThresholds(with_maternal=0.46, without_maternal=0.70)
    p = np.array([0.5, 0.4, 0.5, 0.75])
    assert thresholds.false_seconds(p, features).tolist() == [True, False, False, True]
    assert FalseSignalThresholds.of(0.46).false_seconds(p, features).tolist() == [True, False, True, True]
    assert thresholds.as_dict() == {"threshold": 0.46, "threshold_without_maternal": 0.70}


def _recording(name: str, p_fetal_without_mhr: float) -> tuple:
    """A 10-min recording: 2 min false (maternal channel present), the rest fetal; half of the fetal seconds
    without a maternal value. The judge's probability: 0.9 on the false stretch, 0.1 on fetal seconds with a
    maternal value, ``p_fetal_without_mhr`` on those without (a deceleration that looks maternal)."""
    from models.training.false_signal_data import FalseSignalRecording

    n_s = 600
    features = np.zeros((n_s, len(FEATURES)), np.float32)
    features[:360, MHR_VALID] = 1.0
    labels_s = np.zeros(n_s, np.int8)
    labels_s[:120] = 1
    p = np.full(n_s, 0.1)
    p[:120] = 0.9
    p[360:] = p_fetal_without_mhr
    fhr = np.full(4 * n_s, 140.0)
    rec = FalseSignalRecording(name, "DopMHR", "ultrasound", fhr, np.full(4 * n_s, 80.0), np.zeros(4 * n_s),
                               to_samples(labels_s, 4 * n_s), features, labels_s)
    return rec, p


def test_thresholds_are_chosen_apart_where_the_false_positives_lie_without_a_maternal_value() -> None:
    from models.training.false_signal import choose_thresholds

    records, probs = zip(*[_recording("a", 0.6), _recording("b", 0.3)])
    single = choose_thresholds(list(probs), list(records), 0.99, separate_maternal=False)
    pair = choose_thresholds(list(probs), list(records), 0.99, separate_maternal=True)
    # one threshold must rise above 0.6 to spare recording a's fetal seconds; the pair spares them with the
    # threshold for seconds without a maternal value and keeps the one with it at the lowest that works
    assert single["threshold"] == single["threshold_without_maternal"] == 0.61
    assert pair["threshold"] == 0.11 and pair["threshold_without_maternal"] == 0.65
    assert single["f1"] == pair["f1"] == 1.0 and pair["specificity"] == 1.0
    assert FalseSignalThresholds.from_dict(pair) == FalseSignalThresholds(0.11, 0.65)
    assert FalseSignalThresholds.from_dict({"threshold": 0.53}) == FalseSignalThresholds.of(0.53)  # a version up to v7


def test_the_stream_reads_each_second_with_the_threshold_its_maternal_channel_calls_for() -> None:
    """The served config's ``threshold_without_maternal``: the worker picks each second's threshold from
    the maternal-HR column of the very window it sent, and the finding says which thresholds judged."""
    from models.serving.triton_client import Scored
    from stream.worker.false_signal import FalseSignalJudge

    judge = FalseSignalJudge(scorer=None)  # type: ignore[arg-type]
    window = np.zeros((600, len(FEATURES)), np.float32)
    window[-300:, MHR_VALID] = 1.0  # the maternal channel came on 5 min ago
    # 200 real seconds (the rest padding); the probability 0.6 everywhere; no hold
    judge.keep("bed-1", 1000.0, window, 200, Scored(0.3, np.full(600, 0.6, np.float32), 0.46, "8", 0.0, 0.70))
    verdict = judge.verdict_for("bed-1", 1000.0, 4 * 200, 4.0)
    assert verdict is not None and (verdict.false == 1).all()  # all 200 real seconds had a maternal value
    window[-300:, MHR_VALID] = 0.0
    window[-100:, MHR_VALID] = 1.0
    judge.keep("bed-2", 1000.0, window, 200, Scored(0.3, np.full(600, 0.6, np.float32), 0.46, "8", 0.0, 0.70))
    verdict = judge.verdict_for("bed-2", 1000.0, 4 * 200, 4.0)
    assert verdict is not None
    assert (verdict.false[: 4 * 100] == 0).all() and (verdict.false[4 * 100 :] == 1).all()
    assert verdict.threshold_text == "probability >= 0.46 with a maternal HR, >= 0.7 without one"
    assert judge.evidence("bed-2")["threshold_without_maternal"] == 0.70
    # a version with one threshold (no config parameter) reads every second alike
    judge.keep("bed-3", 1000.0, window, 200, Scored(0.3, np.full(600, 0.6, np.float32), 0.5, "7", 0.0))
    verdict = judge.verdict_for("bed-3", 1000.0, 4 * 200, 4.0)
    assert verdict is not None and (verdict.false == 1).all() and verdict.threshold_text == "probability >= 0.5"


def _tiny_cfg(**kw: object) -> FalseSignalConfig:
    return FalseSignalConfig(net={"width": 8, "kernel": 3, "dilations": [1, 2], "gru_hidden": 0, "dropout": 0.1},
                             **kw)  # type: ignore[arg-type]


def test_an_ensemble_serves_the_mean_probability_of_its_members_in_one_onnx_graph(tmp_path) -> None:
    import onnxruntime as ort

    from models.training.false_signal import export_false_signal_onnx
    from models.training.nets import FalseSignalEnsemble

    torch.manual_seed(0)
    ensemble = build_net(_tiny_cfg(members=3)).eval()
    assert isinstance(ensemble, FalseSignalEnsemble) and len(ensemble.members) == 3
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 120, len(FEATURES))).astype(np.float32))
    with torch.no_grad():
        each = torch.stack([m(x) for m in ensemble.members])
        assert not torch.allclose(each[0], each[1])  # members differ
        assert torch.allclose(ensemble(x), each.mean(dim=0))
        want = ensemble(x).numpy()
    export_false_signal_onnx(ensemble, 120, tmp_path / "fs.onnx")
    got = ort.InferenceSession(str(tmp_path / "fs.onnx")).run(["p_false"], {"signal": x.numpy()})[0]
    assert np.allclose(got, want, atol=1e-5)


def test_weights_trained_elsewhere_are_taken_as_they_are_and_must_match_the_members(tmp_path) -> None:
    from models.training.false_signal import fit

    paths = []
    for seed in (5, 6):
        torch.manual_seed(seed)
        net = build_net(_tiny_cfg())
        paths.append(str(tmp_path / f"m{seed}.pt"))
        torch.save(net.state_dict(), paths[-1])
    model, history = fit([], [], _tiny_cfg(members=2, epochs=0, init_weights=paths))
    assert history == []
    for member, path in zip(model.members, paths):  # type: ignore[union-attr]
        saved = torch.load(path, weights_only=True)
        assert all(torch.equal(v, saved[k]) for k, v in member.state_dict().items())
    with pytest.raises(ValueError, match="init_weights"):
        fit([], [], _tiny_cfg(members=3, epochs=0, init_weights=paths))


def test_maternal_dropout_hides_the_whole_maternal_channel_on_that_share_of_crops() -> None:
    from models.training.false_signal import MATERNAL_FEATURES, _crops
    from models.training.false_signal_data import FalseSignalRecording

    n = 4 * 1200
    fhr, mhr = np.full(n, 140.0), np.full(n, 85.0)
    features = false_signal_inputs(fhr, mhr, None, "ultrasound")
    labels_s = np.zeros(features.shape[0], np.int8)
    rec = FalseSignalRecording("DopMHRTrain0001.fhrm", "DopMHR", "ultrasound", fhr, mhr, np.zeros(n),
                               np.zeros(n, np.int8), features, labels_s)
    other = [i for i in range(len(FEATURES)) if i not in MATERNAL_FEATURES]
    for share, hidden in ((0.0, 0), (1.0, 8)):
        cfg = FalseSignalConfig(crop_s=300, batch_size=8, crops_per_epoch=8, mhr_dropout=share)
        xs, _ = next(iter(_crops([rec], cfg, np.random.default_rng(0))))
        assert sum(not xs[b][:, MATERNAL_FEATURES].any() for b in range(8)) == hidden
        assert np.array_equal(xs[:, :, other], np.broadcast_to(features[:300, other], xs[:, :, other].shape))


def test_a_student_learns_its_teachers_probability_where_the_experts_left_no_mark(tmp_path) -> None:
    """Distillation: on seconds nobody marked, the student's only target is the teacher's probability."""
    from models.training.false_signal import fit
    from models.training.false_signal_data import FalseSignalRecording

    torch.manual_seed(0)
    teacher = build_net(_tiny_cfg())
    with torch.no_grad():  # a teacher that calls every second false
        teacher.out.bias.fill_(8.0)
    torch.save(teacher.state_dict(), tmp_path / "teacher.pt")
    n = 4 * 600
    fhr, mhr = np.full(n, 140.0), np.full(n, 85.0)
    features = false_signal_inputs(fhr, mhr, None, "ultrasound")
    unmarked = np.full(features.shape[0], -1, np.int8)
    rec = FalseSignalRecording("DopMHRTrain0001.fhrm", "DopMHR", "ultrasound", fhr, mhr, np.zeros(n),
                               np.full(n, -1, np.int8), features, unmarked)
    teacher_cfg = {"net": _tiny_cfg().net, "init_weights": [str(tmp_path / "teacher.pt")]}
    student, _ = fit([rec], [rec], _tiny_cfg(epochs=3, crop_s=300, batch_size=8, crops_per_epoch=64,
                                          learning_rate=1e-2, eval_every=99, teacher=teacher_cfg))
    with torch.no_grad():
        p = student(torch.from_numpy(features[None]))[0].numpy()
    assert p.mean() > 0.9  # it learned the teacher's verdict, with no expert mark at all


def test_a_teacher_can_be_a_trained_version_directory(tmp_path) -> None:
    import json

    from models.training.false_signal import _teacher

    torch.manual_seed(3)
    cfg = _tiny_cfg(members=2)
    ensemble = build_net(cfg).eval()
    torch.save(ensemble.state_dict(), tmp_path / "false_signal.pt")
    (tmp_path / "config.json").write_text(json.dumps({"false_signal": {"members": 2, "net": cfg.net}}))
    teacher = _teacher(FalseSignalConfig(teacher={"version_dir": str(tmp_path)}), torch.device("cpu"))
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 60, len(FEATURES))).astype(np.float32))
    with torch.no_grad():
        assert teacher is not None and torch.allclose(teacher(x), ensemble(x))


def test_a_served_onnx_file_gives_back_its_network_and_an_ensembles_is_refused(tmp_path) -> None:
    """``init_weights`` may name a served ONNX file (v7 took v5's network so): the weights read back give the
    file's outputs; an ensemble's file does not map onto one network."""
    import onnxruntime as ort

    from models.training.false_signal import export_false_signal_onnx, fit, weights_from_onnx

    torch.manual_seed(3)
    served = build_net(_tiny_cfg()).eval()
    export_false_signal_onnx(served, 120, tmp_path / "served.onnx")
    model, history = fit([], [], _tiny_cfg(epochs=0, init_weights=[str(tmp_path / "served.onnx")]))
    assert history == []
    x = np.random.default_rng(2).normal(size=(2, 120, len(FEATURES))).astype(np.float32)
    with torch.no_grad():
        mine = model(torch.from_numpy(x)).numpy()
    assert np.allclose(mine, ort.InferenceSession(str(tmp_path / "served.onnx")).run(["p_false"], {"signal": x})[0],
                       atol=1e-5)
    export_false_signal_onnx(build_net(_tiny_cfg(members=2)).eval(), 120, tmp_path / "ensemble.onnx")
    with pytest.raises(ValueError, match="one false-signal network"):
        weights_from_onnx(tmp_path / "ensemble.onnx")
