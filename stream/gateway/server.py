"""``ctgwatch gateway``: the HTTP ingest endpoint and the MLLP listener in one process."""

from __future__ import annotations

import asyncio
import logging

import uvicorn
from hl7.mllp import start_hl7_server

from stream.core.kafka import producer_outbox
from stream.core.settings import Settings
from stream.gateway.devices import DeviceRegistry
from stream.gateway.guard import DeviceRateLimit, RefusalSampler
from stream.gateway.http import create_http_app
from stream.gateway.intake import Intake
from stream.gateway.mllp import MllpHandler, MllpPolicy, require_mllp_authentication
from stream.gateway.publisher import IngestPublisher

log = logging.getLogger("ctgwatch.gateway")


async def serve_gateway(settings: Settings) -> None:
    policy = MllpPolicy.of(settings.gateway_mllp_allow, settings.gateway_mllp_secret,
                           settings.gateway_mllp_idle_timeout_s, settings.gateway_mllp_frame_timeout_s)
    require_mllp_authentication(settings.gateway_host, policy)  # before anything starts
    registry = DeviceRegistry(settings.tokens_file)
    outbox = producer_outbox(settings, "gateway", max_records=settings.gateway_outbox_records,
                             max_bytes=settings.gateway_outbox_bytes)
    await outbox.start()
    publisher = IngestPublisher(outbox, settings.topic_names())
    intake = Intake(settings.ingest_limits(), publisher,
                    sampler=RefusalSampler(settings.gateway_refused_samples_per_min),
                    rate=DeviceRateLimit(settings.gateway_device_rate_per_s, settings.gateway_device_burst),
                    sample_bytes=settings.gateway_refused_keep_bytes)
    handler = MllpHandler(intake, registry, policy=policy)
    mllp = await start_hl7_server(
        handler.on_connection, settings.gateway_host, settings.gateway_mllp_port,
        limit=max(settings.gateway_mllp_read_limit_bytes, settings.ingest_max_message_bytes),
    )
    config = uvicorn.Config(
        create_http_app(intake, registry), host=settings.gateway_host, port=settings.gateway_http_port,
        log_level="warning", lifespan="off", **settings.proxy_options,
    )
    server = uvicorn.Server(config)
    log.info("gateway: HTTP %s:%d, MLLP %s:%d, %d device(s) registered", settings.gateway_host,
             settings.gateway_http_port, settings.gateway_host, settings.gateway_mllp_port, len(registry.devices()))
    print(f"gateway ready: http://{settings.gateway_host}:{settings.gateway_http_port} "
          f"mllp://{settings.gateway_host}:{settings.gateway_mllp_port}", flush=True)
    try:
        await server.serve()  # returns on SIGINT/SIGTERM
    finally:
        mllp.close()
        await mllp.wait_closed()
        await outbox.stop(settings.gateway_publish_timeout_s)


def run_gateway(settings: Settings) -> None:
    from stream.core.logs import configure

    configure(settings.log_format)
    from stream.core.ports import require_free_ports

    require_free_ports(
        "gateway", settings.gateway_host,
        {"gateway_http_port": settings.gateway_http_port, "gateway_mllp_port": settings.gateway_mllp_port},
    )
    asyncio.run(serve_gateway(settings))
