"""Launcher of the embedded local stack: a real Kafka-protocol broker (Tansu),
a real redis-server and a real tritonserver, each a process on loopback."""
