"""Logs name patients by a keyed pseudonym, and client-library retry storms are thinned out."""

from __future__ import annotations

import logging
import stat

from stream.core.logs import RepeatFilter, pseudonym, pseudonym_key


def test_pseudonym_is_stable_per_installation_and_hides_the_id(tmp_path) -> None:
    key = pseudonym_key(tmp_path)
    assert pseudonym_key(tmp_path) == key  # every process of the installation uses the same key
    assert stat.S_IMODE((tmp_path / "log-pseudonym.key").stat().st_mode) == 0o600
    alias = pseudonym("MRN-0012345", key)
    assert alias.startswith("p-") and len(alias) == 14 and "0012345" not in alias
    assert pseudonym("MRN-0012345", key) == alias
    assert pseudonym("MRN-0012345", pseudonym_key(tmp_path / "other")) != alias  # another site, another alias
    assert pseudonym(None, key) == "-"


def _record(name: str, msg: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_repeat_filter_lets_one_line_per_message_through_and_counts_the_rest(monkeypatch) -> None:
    now = [100.0]
    monkeypatch.setattr("stream.core.logs.time.monotonic", lambda: now[0])
    f = RepeatFilter(every_s=10)
    passed = [f.filter(_record("aiokafka", "Unable connect to node with id %s")) for _ in range(50)]
    assert passed.count(True) == 1
    now[0] += 11
    again = _record("aiokafka", "Unable connect to node with id %s")
    assert f.filter(again) and "49 more like this" in again.msg
    assert all(f.filter(_record("ctgwatch.worker", "Redis is unavailable")) for _ in range(5))  # ours: all
