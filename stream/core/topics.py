"""Topic definitions (``infra/topics.yaml``) and their creation on a broker.

The YAML file is the single source of truth for topic names and partition
counts; producers, Faust agents and the launcher all read it through
:func:`load_topics` instead of spelling topic names themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream.core.errors import SetupError

# Kafka protocol error code for "topic already exists" (CreateTopics API).
TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1
    config: dict[str, str] = field(default_factory=dict)
    description: str = ""
    role: str = ""


def load_topics(path: Path) -> list[TopicSpec]:
    """Read the topic definitions, failing with a clear message on a bad file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise SetupError(f"topic definitions {path} not found", "set CTGWATCH_TOPICS_FILE to infra/topics.yaml") from exc
    except yaml.YAMLError as exc:
        raise SetupError(f"topic definitions {path} are not valid YAML ({exc})", "fix the file") from exc
    specs = []
    for entry in (raw or {}).get("topics", []):
        specs.append(
            TopicSpec(
                name=str(entry["name"]),
                partitions=int(entry["partitions"]),
                replication_factor=int(entry.get("replication_factor", 1)),
                config={str(k): str(v) for k, v in (entry.get("config") or {}).items()},
                description=str(entry.get("description", "")),
                role=str(entry.get("role", "")),
            )
        )
    if not specs:
        raise SetupError(f"topic definitions {path} define no topics", "list the topics under 'topics:'")
    return specs


@dataclass(frozen=True)
class TopicNames:
    """The topic for each role the code needs."""

    ctg: str
    vitals: str
    deadletter: str
    alerts: str
    groundtruth: str

    @classmethod
    def from_specs(cls, specs: list[TopicSpec]) -> TopicNames:
        by_role = {s.role: s.name for s in specs if s.role}
        missing = [r for r in cls.__dataclass_fields__ if r not in by_role]
        if missing:
            raise SetupError(
                f"topic definitions name no topic for role(s) {', '.join(missing)}",
                "give each topic in infra/topics.yaml its 'role:' (ctg, vitals, deadletter, alerts, groundtruth)",
            )
        return cls(**{r: by_role[r] for r in cls.__dataclass_fields__})


def topic_names(path: Path) -> TopicNames:
    return TopicNames.from_specs(load_topics(path))


async def ensure_topics(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> dict[str, str]:
    """Create missing topics; report for each topic 'created' or 'exists'.

    A topic that exists with a different partition count is reported, not
    changed: Tansu cannot add partitions and shrinking is impossible anywhere.
    """
    response = await admin.create_topics(
        [NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.config) for s in specs]
    )
    outcome: dict[str, str] = {}
    for name, code, message in response.topic_errors:
        if code == 0:
            outcome[name] = "created"
        elif code == TOPIC_ALREADY_EXISTS:
            outcome[name] = "exists"
        else:
            raise SetupError(f"broker refused to create topic {name!r}: {message} (error {code})",
                             "check the broker's logs and the topic definitions in infra/topics.yaml")
    existing = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics([s.name for s in specs])}
    for spec in specs:
        if existing.get(spec.name, spec.partitions) != spec.partitions:
            outcome[spec.name] = f"exists with {existing[spec.name]} partitions (wanted {spec.partitions})"
    return outcome
