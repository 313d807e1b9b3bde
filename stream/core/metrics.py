"""Prometheus metrics of ctgwatch, defined once so every module counts the same way.

Names follow Prometheus conventions (``_total`` for counters, base units).
Workers and the gateway expose them over HTTP on their metrics port.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS_IN = Counter(
    "ctgwatch_ingest_records_total",
    "Signal records accepted at an entrance, by entrance (kafka, http, mllp) and kind (ctg, vitals).",
    ["entrance", "kind"],
)
DEAD_LETTERS = Counter(
    "ctgwatch_dead_letters_total",
    "Inputs refused and published to the dead-letter topic, by entrance and reject code.",
    ["entrance", "code"],
)
GATEWAY_BACKPRESSURE = Counter(
    "ctgwatch_gateway_backpressure_total",
    "Requests answered 503 / AR because the gateway outbox was full (broker away or slow).",
    ["entrance"],
)
PUBLISH_SECONDS = Histogram(
    "ctgwatch_publish_seconds",
    "Time from a gateway publish to the broker's acknowledgement.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ALERTS = Counter("ctgwatch_alerts_raised_total", "Alerts raised, by kind and severity.", ["kind", "severity"])
ANALYSIS_SECONDS = Histogram(
    "ctgwatch_window_analysis_seconds",
    "Wall time of one patient's FIGO window analysis (with analysis helper processes, the hand-over to them included).",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25),
)
ANALYSIS_INTERVAL = Histogram(
    "ctgwatch_analysis_interval_seconds",
    "Recording time between two FIGO analyses of one patient (the cadence asks for 15 s; longer means the "
    "worker's analyses fall behind: the capacity bench holds a bed count only while the mean stays near 15 s).",
    buckets=(15, 16, 17, 18, 20, 25, 30, 45, 60, 120),
)
MODEL_INTERVAL = Histogram(
    "ctgwatch_model_interval_seconds",
    "Recording time between two model scorings of one patient, per scoring ('false_signal': the false-signal "
    "model; 'anomaly_and_risk': the autoencoder and the acidaemia LSTM). The cadence asks for 60 s; the capacity "
    "bench holds a bed count only while the mean stays near it.",
    ["scoring"],
    buckets=(60, 61, 62, 63, 65, 70, 80, 90, 120, 180, 300),
)
TRITON_SECONDS = Histogram(
    "ctgwatch_triton_request_seconds", "Triton request latency per model batch.", ["model"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
TRITON_BATCH = Histogram(
    "ctgwatch_triton_batch_size", "Windows per Triton request.", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
MODEL_STATUS = Gauge("ctgwatch_models_available", "1 when the anomaly models answered at the last scoring, 0 = degraded.")
PACKET_LATENCY = Histogram(
    "ctgwatch_packet_age_seconds", "Wall time from a packet's last sample to the end of its processing.",
    # fine between 0.25 and 1.5 s, where the capacity bench reads its p99 (a p99 interpolated in one
    # 0.5-1 s bucket said only "between 0.5 and 1")
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1, 1.25, 1.5, 2.5, 5, 10),
)
CONSUMER_LAG = Gauge(
    "ctgwatch_consumer_lag_records", "Records of a signal topic partition the worker group has not processed yet.",
    ["topic", "partition"],
)
OUTAGE_WAITING = Gauge(
    "ctgwatch_worker_outage_waiting",
    "1 while the worker holds a record because Redis or the broker is unreachable (it retries; nothing is dropped).",
)
OUTAGE_RETRIES = Counter(
    "ctgwatch_worker_outage_retries_total", "Attempts to process a record that failed because a service was away.",
)
OUTBOX_HELD = Gauge(
    "ctgwatch_outbox_held_records", "Records a producer holds until the broker acknowledges them, by producer.",
    ["producer"],
)
OUTBOX_BROKER_UP = Gauge(
    "ctgwatch_outbox_broker_up", "0 while a producer cannot reach the broker (it holds and retries), by producer.",
    ["producer"],
)
DUPLICATES = Counter(
    "ctgwatch_redelivered_records_total",
    "Records received again that were already stored exactly (a producer resent them after an outage); skipped.",
)
GATEWAY_REFUSED = Counter(
    "ctgwatch_gateway_refused_total",
    "Unauthenticated inputs refused at the gateway (all counted; a few per sender a minute sampled as dead letters).",
    ["entrance", "sampled"],
)
GATEWAY_RATE_LIMITED = Counter(
    "ctgwatch_gateway_rate_limited_total", "Requests refused because a device exceeded its rate (429 / AR).",
    ["entrance"],
)
