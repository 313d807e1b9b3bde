"""Streaming side of ctgwatch: Faust app, schemas, ingestion, alert routing, CLI."""
