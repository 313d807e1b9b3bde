"""What the stream runs: model inputs, the Triton client, the compromise risk, the model repository (no torch)."""
