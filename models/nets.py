"""The two anomaly models. Both take ``window [B, T, 4]`` (see models/features.py)
and return, per window, a per-second error (where the window is abnormal) and a
scalar score (how abnormal), computed inside the graph so that Triton returns
them directly and the stream does no model arithmetic of its own.

- :class:`LstmForecaster`: reads the window and, at every second, forecasts
  the FHR ``horizon_s`` seconds ahead. Normal FHR is predictable at that range
  from its recent course and the contractions; decelerations that do not
  follow the usual pattern, sudden drops, sinusoidal rhythm and lost
  variability are not, so the masked squared forecast error rises. Chosen
  over a window classifier because it needs no labels: it learns from normal
  traces only (labels of CTG abnormality are scarce and disputed).
- :class:`ConvAutoencoder`: compresses the whole window through a narrow
  bottleneck (about a quarter of the input size) and reconstructs FHR and UC;
  shapes it has not seen in normal traces reconstruct badly.

Lost seconds (``fhr_valid = 0``) never count in an error.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.features import FHR, UC, VALID

TENSOR_IN = "window"
OUTPUTS = ("score", "error")  # plus "forecast" (LSTM) / "reconstruction" (AE)


def _masked_score(error: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return (error.sum(dim=1) / valid.sum(dim=1).clamp(min=1.0)).unsqueeze(1)


class LstmForecaster(nn.Module):
    def __init__(self, hidden: int = 32, layers: int = 1, horizon_s: int = 10) -> None:
        super().__init__()
        self.horizon_s = horizon_s
        self.lstm = nn.LSTM(input_size=4, hidden_size=hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h, _ = self.lstm(window)
        forecast = self.head(h).squeeze(-1)  # forecast[:, t] ~ fhr[:, t + horizon]
        k = self.horizon_s
        target = window[:, k:, FHR]
        valid = window[:, k:, VALID] * window[:, :-k, VALID]
        err = (forecast[:, :-k] - target) ** 2 * valid
        # error at the time of the sample that was forecast, so the shading sits on the event
        error = F.pad(err, (k, 0))
        return _masked_score(err, valid), error, forecast


class ConvAutoencoder(nn.Module):
    def __init__(self, window_s: int = 600, width: int = 16, code_channels: int = 8, uc_weight: float = 0.25) -> None:
        super().__init__()
        self.window_s = window_s
        self.uc_weight = uc_weight
        chans = [4, width, width * 2, width * 2, code_channels]
        self.encoder = nn.ModuleList(
            nn.Conv1d(chans[i], chans[i + 1], kernel_size=7, stride=2, padding=3) for i in range(4)
        )
        sizes = [window_s]
        for _ in range(4):
            sizes.append((sizes[-1] + 1) // 2)
        self.sizes = sizes  # 600, 300, 150, 75, 38: the code is 8 x 38 = 304 numbers for 1200 in
        dec = [code_channels, width * 2, width * 2, width, width]
        self.decoder = nn.ModuleList(nn.Conv1d(dec[i], dec[i + 1], kernel_size=7, padding=3) for i in range(4))
        self.out = nn.Conv1d(width, 2, kernel_size=5, padding=2)

    def forward(self, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = window.transpose(1, 2)  # [B, 4, T]
        for i, conv in enumerate(self.encoder):
            x = conv(x)
            if i < len(self.encoder) - 1:
                x = F.gelu(x)
        for i, conv in enumerate(self.decoder):
            x = F.interpolate(x, size=self.sizes[-2 - i], mode="linear", align_corners=False)
            x = F.gelu(conv(x))
        recon = self.out(x).transpose(1, 2)  # [B, T, 2]: fhr, uc
        valid = window[:, :, VALID]
        error = (recon[:, :, 0] - window[:, :, FHR]) ** 2 * valid + self.uc_weight * (recon[:, :, 1] - window[:, :, UC]) ** 2
        return _masked_score(error * valid, valid), error, recon


def build(kind: str, config: dict) -> nn.Module:
    if kind == "lstm":
        return LstmForecaster(**config)
    if kind == "autoencoder":
        return ConvAutoencoder(**config)
    raise ValueError(f"unknown model kind {kind!r}")
