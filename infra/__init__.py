"""Deployment side of ctgwatch: topic definitions, Triton model repository,
service configs and the launcher of the embedded local stack."""
