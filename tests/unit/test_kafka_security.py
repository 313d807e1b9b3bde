"""One setting secures every Kafka client: TLS and SASL options (stream/core/kafka.py)."""

from __future__ import annotations

import ssl

import faust
import pytest
from pydantic import ValidationError

from stream.core.kafka import client_security, faust_credentials
from stream.core.settings import Settings


def test_plaintext_by_default() -> None:
    settings = Settings()
    assert client_security(settings) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(settings) is None


def test_sasl_ssl_gives_every_client_the_credentials_and_a_tls_context() -> None:
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="ctgwatch",
                        kafka_sasl_password="s3cret", kafka_sasl_mechanism="SCRAM-SHA-512")
    options = client_security(settings)
    assert options["sasl_mechanism"] == "SCRAM-SHA-512" and options["sasl_plain_username"] == "ctgwatch"
    assert options["sasl_plain_password"] == "s3cret" and isinstance(options["ssl_context"], ssl.SSLContext)
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials) and credentials.username == "ctgwatch"
    assert "s3cret" not in repr(settings)  # the password is never printed with the settings


def test_sasl_without_credentials_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="CTGWATCH_KAFKA_SASL_USERNAME"):
        Settings(kafka_security_protocol="SASL_PLAINTEXT")
