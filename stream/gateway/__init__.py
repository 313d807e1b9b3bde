"""IoMT gateway: HTTP JSON ingest and an HL7 v2 MLLP listener, publishing validated records."""
