"""Settings and topic definitions."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.core.errors import SetupError
from stream.core.settings import Settings
from stream.core.topics import load_topics


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CTGWATCH_BROKER_PORT", "29092")
    monkeypatch.setenv("CTGWATCH_STATE_DIR", str(tmp_path / "state"))
    s = Settings()
    assert s.bootstrap_servers == "127.0.0.1:29092"
    assert s.run_dir == tmp_path / "state" / "run"


def test_external_services_replace_embedded_addresses() -> None:
    s = Settings(kafka_bootstrap="k1:9092,k2:9092", redis_url="redis://r:6379/2", triton_url="t:8000")
    assert s.bootstrap_servers == "k1:9092,k2:9092"
    assert s.redis_dsn == "redis://r:6379/2"
    assert (s.triton_http, s.triton_grpc) == ("t:8000", "t:8001")


def test_project_topics_are_defined_once_with_partitions() -> None:
    specs = {t.name: t for t in load_topics(Settings().topics_file)}
    assert {"ctg.packets", "vitals.observations", "ingest.deadletter", "alerts"} <= set(specs)
    # Signal topics share a partition count so one patient's CTG and vitals
    # can be co-partitioned on the same worker.
    assert specs["ctg.packets"].partitions == specs["vitals.observations"].partitions >= 6


def test_bad_topic_file_is_a_setup_error(tmp_path: Path) -> None:
    bad = tmp_path / "topics.yaml"
    bad.write_text("topics: []\n")
    with pytest.raises(SetupError, match="define no topics"):
        load_topics(bad)
    with pytest.raises(SetupError, match="not found"):
        load_topics(tmp_path / "missing.yaml")


def test_json_logs_are_one_object_per_line_with_extra_fields(capsys) -> None:
    import json
    import logging

    from stream.core.logs import configure

    configure("json")
    try:
        logging.getLogger("ctgwatch.pipeline").info("alert raised", extra={"patient_id": "p-1", "alert_kind": "bradycardia"})
        line = capsys.readouterr().err.strip().splitlines()[-1]
        record = json.loads(line)
        assert record["message"] == "alert raised" and record["level"] == "INFO"
        assert record["patient_id"] == "p-1" and record["alert_kind"] == "bradycardia"
    finally:
        configure("text")


def test_cli_choices_match_the_domain_and_show_in_help() -> None:
    """The CLI's Enum choices are the ones the code accepts, and --help lists them."""
    from typer.testing import CliRunner

    from stream.cli import Role, WardMix, app
    from stream.sources.ward import MIXES
    from stream.station.users import ROLES

    assert tuple(m.value for m in WardMix) == MIXES
    assert tuple(r.value for r in Role) == ROLES
    runner = CliRunner()
    assert "standard" in runner.invoke(app, ["simulate", "--help"]).output
    assert "obstetrician" in runner.invoke(app, ["users", "add", "--help"]).output
    refused = runner.invoke(app, ["simulate", "--mix", "weird"])
    assert refused.exit_code == 2 and "weird" in refused.output


def test_alert_table_columns_never_run_together() -> None:
    from stream.cli import text_table

    lines = text_table(["bed", "kind", "evidence"], [["bed-10", "reduced_variability_in_decelerations", "x"],
                                                     ["bed-1", "signal_loss", "FHR signal lost"]])
    assert lines[1] == "bed-10  reduced_variability_in_decelerations  x"
    assert lines[2].index("signal_loss") == lines[1].index("reduced_variability")


def test_false_signal_settings_file_is_read_and_unknown_settings_refused(tmp_path) -> None:
    """`ctgwatch train --false-signal-config` takes FalseSignalConfig fields and refuses others by name."""
    import json

    from stream.cli import _false_signal_overrides

    good = tmp_path / "v4.json"
    good.write_text(json.dumps({"members": 5, "mhr_dropout": 0.3, "device": "cuda"}))
    assert _false_signal_overrides(good) == {"members": 5, "mhr_dropout": 0.3, "device": "cuda"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"members": 5, "widht": 64}))
    with pytest.raises(SetupError, match="widht"):
        _false_signal_overrides(bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(SetupError, match="cannot read"):
        _false_signal_overrides(broken)
    repo_recipe = json.loads((Path(__file__).parents[2] / "bench" / "false_signal_sweep" / "v4.json").read_text())
    assert repo_recipe["members"] == 5 and "init_weights" not in repo_recipe
