"""The alarm system of IEC 60601-1-8's ideas, as pure logic (no I/O): which finding is an annotation, a
notice or an alarm and of what priority (:mod:`stream.alarms.policy`, one table), the state machine that
applies it per patient (:mod:`stream.alarms.tracker`), and how a raised alert is handled: escalation times,
evidence kept (:mod:`stream.alarms.handling`). The stream and the evaluation share all three, so the
evaluation measures what the ward gets."""
