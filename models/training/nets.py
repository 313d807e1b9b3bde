"""The networks served on Triton, each computing its outputs inside the graph.

- :class:`ConvAutoencoder` (``ctg_autoencoder``): where and how much the last 10 min
  depart from normal traces (a multiscale view: FHR level, variability, UC);
- :class:`AcidaemiaLstm` (``ctg_lstm``): the probability of umbilical-artery
  acidaemia from the last hour of CTG;
- :class:`FalseSignalNet` (``ctg_false_signal``): per second, the probability
  that the FHR is not the fetal heart.

The anomaly and risk models take ``window [B, T, 4]`` (models/serving/features.py); the
false-signal model its own per-second features. Lost seconds (``fhr_valid = 0``)
never count in an error.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.serving.features import FHR, MHR, UC, VALID, VIEW_CHANNELS

TENSOR_IN = "window"


def _masked_score(error: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return (error.sum(dim=1) / valid.sum(dim=1).clamp(min=1.0)).unsqueeze(1)


def _masked_pool(x: torch.Tensor, valid: torch.Tensor, size: int) -> torch.Tensor:
    """Centred running mean of ``x [B, T]`` over ``size`` seconds, counting only valid seconds."""
    pad = size // 2
    num = F.avg_pool1d(F.pad((x * valid).unsqueeze(1), (pad, size - 1 - pad), mode="replicate"), size, stride=1)
    den = F.avg_pool1d(F.pad(valid.unsqueeze(1), (pad, size - 1 - pad), mode="replicate"), size, stride=1)
    return (num / den.clamp(min=1e-3)).squeeze(1)


#: Sinusoidal periods looked for (FIGO 2015: a regular, smooth, sine-like undulation
#: of 3-5 cycles/min, i.e. a 12-20 s period; docs/CLINICAL.md).
SINUSOIDAL_PERIODS_S = (12, 15, 18, 21)


def _masked_median(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Median of ``x [B, T]`` over valid seconds: ``[B, 1]`` (a sort and a gather, so it exports to ONNX)."""
    ranked, _ = torch.sort(torch.where(valid > 0, x, torch.full_like(x, 1e4)), dim=1)
    middle = ((valid.sum(dim=1).clamp(min=1.0).long() - 1) // 2).unsqueeze(1)
    return torch.gather(ranked, 1, middle)


def _lagged(x: torch.Tensor, lag: int) -> torch.Tensor:
    """``x`` delayed by ``lag`` seconds (the first value repeated in front)."""
    return torch.cat([x[:, :1].expand(-1, lag), x[:, :-lag]], dim=1)


def _periodicity(residual: torch.Tensor, valid: torch.Tensor, energy: torch.Tensor, span_s: int) -> torch.Tensor:
    """How sine-like the short-term FHR is at 3-5 cycles/min, per second: about 1 for a sine, 0 for noise.

    For each period ``P`` of :data:`SINUSOIDAL_PERIODS_S`, half the difference of
    the running autocorrelation at lag ``P`` (a sine: +1) and at lag ``P/2``
    (a sine: -1), over ``span_s`` seconds; the largest over the periods.
    ``energy``: the running mean of ``residual**2`` over the same span (lag 0).
    """
    best = torch.full_like(residual, -1.0)
    for period in SINUSOIDAL_PERIODS_S:
        acf = [
            _masked_pool(residual * _lagged(residual, lag), valid * _lagged(valid, lag), span_s) / energy
            for lag in (period, period // 2)
        ]
        best = torch.maximum(best, (acf[0] - acf[1]) / 2)
    return best.clamp(-1.0, 1.0)


def multiscale_view(window: torch.Tensor, smooth_s: int = 15, variability_s: int = 60) -> torch.Tensor:
    """``window [B, T, 4]`` -> ``[B, T, 6]``: what the autoencoder reconstructs (inside the graph).

    - ``below``: how far the FHR, smoothed over ``smooth_s`` s, lies *below* the
      window's median level (decelerations). Rises above it are left out:
      accelerations are reassuring (FIGO 2015), and a view that showed them made
      a vigorous normal trace as unusual as a deceleration of the same size;
    - ``amplitude``: log of the running standard deviation over ``variability_s`` s
      of what the smoothing removed (long-term variability);
    - ``roughness``: log of the running mean of the second-to-second FHR change
      (short-term variability). On log scales a flat trace (reduced variability)
      is an outlier, not the quietest normal trace;
    - ``periodicity``: how sine-like what the smoothing removed is at 3-5 cycles/min
      (:func:`_periodicity`). A sinusoidal pattern can have a normal amplitude and
      roughness; its regularity is what sets it apart (FIGO 2015);
    - ``baseline``: the window's median level itself (140 bpm = 0): tachycardia and
      bradycardia;
    - ``uc``: the contractions, for the timing of decelerations.

    Why: scored on the raw FHR, the first autoencoder rewarded smooth traces
    (decelerations, reduced variability reconstruct well) and ranked abnormal
    windows *below* normal ones (AUC 0.43); the v2 view (signed level, no
    periodicity) reached 0.71 but ranked sinusoidal windows below normal ones.
    """
    fhr, uc, valid = window[:, :, FHR], window[:, :, UC], window[:, :, VALID]
    smooth = _masked_pool(fhr, valid, smooth_s)
    level = _masked_median(smooth, valid)
    residual = (fhr - smooth) * valid
    energy = _masked_pool(residual**2, valid, variability_s).clamp(min=1e-6)
    spread = energy.sqrt()
    both = valid * _lagged(valid, 1)
    step = torch.abs(fhr - _lagged(fhr, 1)) * both
    rough = _masked_pool(step, both, variability_s).clamp(min=1e-4)
    # natural logs around typical normal values (0.1 = 2.5 bpm spread, 0.06 = 1.5 bpm per second; models/serving/features.py units)
    amplitude = torch.log(spread / 0.1).clamp(-4.0, 4.0)
    roughness = torch.log(rough / 0.06).clamp(-4.0, 4.0)
    # doubled so that a sine (1) stands as far from noise (0) as the log channels' departures
    periodicity = 2.0 * _periodicity(residual, valid, energy, variability_s)
    below = F.relu(level - smooth)
    baseline = level.expand_as(fhr)  # the window's median level (140 bpm = 0): tachy- and bradycardia
    return torch.stack([below * valid, amplitude * valid, roughness * valid, periodicity * valid,
                        baseline * valid, uc], dim=2)


class ConvAutoencoder(nn.Module):
    """1-D convolutional autoencoder over the multiscale view, scored by how unlike normal a window is.

    Trained on normal windows only. Reconstruction error alone rewards smooth
    traces (a deceleration or a flat trace reconstructs *well*: measured, abnormal
    simulator windows scored below normal ones), so the anomaly is the distance
    of each code position from the codes of normal training windows
    (Mahalanobis, with the mean and precision fitted after training and stored
    in the graph as buffers) plus the reconstruction error, each view channel's
    error divided by its mean on the training windows (``channel_weight``), so
    that a channel the network reconstructs well (the baseline) counts as much
    as one it reconstructs loosely (the contractions). Each code position covers
    about 16 s of the window, so the per-second ``error`` output says *where*
    the window is unusual, and ``score`` (its mean over valid seconds) *how much*.
    """

    code_mean: torch.Tensor
    code_precision: torch.Tensor
    channel_weight: torch.Tensor

    def __init__(self, window_s: int = 600, width: int = 16, code_channels: int = 8, uc_weight: float = 0.25) -> None:
        super().__init__()
        self.window_s = window_s
        self.uc_weight = uc_weight
        chans = [VIEW_CHANNELS, width, width * 2, width * 2, code_channels]
        self.encoder = nn.ModuleList(
            nn.Conv1d(chans[i], chans[i + 1], kernel_size=7, stride=2, padding=3) for i in range(4)
        )
        sizes = [window_s]
        for _ in range(4):
            sizes.append((sizes[-1] + 1) // 2)
        self.sizes = sizes  # 600, 300, 150, 75, 38: the code is 8 x 38 = 304 numbers for 3600 in
        dec = [code_channels, width * 2, width * 2, width, width]
        self.decoder = nn.ModuleList(nn.Conv1d(dec[i], dec[i + 1], kernel_size=7, padding=3) for i in range(4))
        self.out = nn.Conv1d(width, VIEW_CHANNELS, kernel_size=5, padding=2)
        # the normal codes' distribution and the channels' error scale (fit_normal_statistics);
        # zero and one until fitted, so training sees no distance and equal channels
        self.register_buffer("code_mean", torch.zeros(code_channels))
        self.register_buffer("code_precision", torch.zeros(code_channels, code_channels))
        self.register_buffer("channel_weight", torch.ones(VIEW_CHANNELS))

    def encode(self, view: torch.Tensor) -> torch.Tensor:
        x = view.transpose(1, 2)  # [B, 6, T]
        for i, conv in enumerate(self.encoder):
            x = conv(x)
            if i < len(self.encoder) - 1:
                x = F.gelu(x)
        return x  # [B, C, L]

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        x = code
        for i, conv in enumerate(self.decoder):
            x = F.interpolate(x, size=self.sizes[-2 - i], mode="linear", align_corners=False)
            x = F.gelu(conv(x))
        return self.out(x).transpose(1, 2)  # [B, T, 6]: the view's channels

    def code_distance(self, code: torch.Tensor) -> torch.Tensor:
        """Per code position, the squared Mahalanobis distance from normal codes over the channels: ``[B, L]``."""
        d = code - self.code_mean.view(1, -1, 1)
        return torch.einsum("bcl,cd,bdl->bl", d, self.code_precision, d) / code.shape[1]

    def forward(self, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        view = multiscale_view(window)
        code = self.encode(view)
        recon = self.decode(code)
        valid = window[:, :, VALID]
        sq = (recon - view) ** 2 * self.channel_weight
        reconstruction = sq[:, :, :-1].sum(dim=2) * valid + self.uc_weight * sq[:, :, -1]
        distance = F.interpolate(self.code_distance(code).unsqueeze(1), size=window.shape[1], mode="linear",
                                 align_corners=False)[:, 0]
        error = (reconstruction + distance) * valid
        return _masked_score(error, valid), error, recon

    @torch.no_grad()
    def fit_normal_statistics(self, windows: torch.Tensor, shrinkage: float = 0.05, batch: int = 256) -> None:
        """After training, on the normal training windows: the codes' mean and (shrunk) precision,
        and each view channel's mean squared reconstruction error, kept as buffers."""
        codes = []
        squared = torch.zeros(VIEW_CHANNELS, dtype=torch.float64)
        seconds = 0.0
        for i in range(0, len(windows), batch):
            w = windows[i:i + batch]
            view = multiscale_view(w)
            code = self.encode(view)  # [b, C, L]
            # only positions whose stretch of the window is mostly valid signal
            valid = F.adaptive_avg_pool1d(w[:, :, VALID].unsqueeze(1), code.shape[2])[:, 0] >= 0.5
            codes.append(code.permute(0, 2, 1)[valid])
            per_second = w[:, :, VALID].unsqueeze(2)
            squared += (((self.decode(code) - view) ** 2) * per_second).sum(dim=(0, 1)).double()
            seconds += float(per_second.sum())
        z = torch.cat(codes).double()
        mean = z.mean(dim=0)
        cov = torch.cov((z - mean).T)
        cov = (1 - shrinkage) * cov + shrinkage * torch.eye(cov.shape[0], dtype=cov.dtype) * cov.diagonal().mean()
        self.code_mean.copy_(mean.float())
        self.code_precision.copy_(torch.linalg.inv(cov).float())
        per_channel = (squared / max(seconds, 1.0)).clamp(min=1e-4)
        self.channel_weight.copy_((per_channel.mean() / per_channel).float())


def build(kind: str, config: dict) -> nn.Module:
    if kind == "lstm":
        return AcidaemiaLstm(**config)
    if kind == "autoencoder":
        return ConvAutoencoder(**config)
    raise ValueError(f"unknown model kind {kind!r}")


class _DilatedBlock(nn.Module):
    """Residual block: dilated convolution (non-causal: the verdict on a second uses both sides), GELU, 1x1."""

    def __init__(self, width: int, dilation: int, kernel: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, width, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
        self.drop = nn.Dropout(dropout)  # training only (a no-op in the exported graph)
        self.mix = nn.Conv1d(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(self.drop(F.gelu(self.conv(x))))


class FalseSignalNet(nn.Module):
    """Per-second probability that the FHR is not the fetal heart (maternal, doubled, halved).

    A temporal convolution network (dilations 1..256 s, a receptive field of
    about +-8 min) over the per-second features of models/serving/false_signal_features.py,
    optionally followed by a bidirectional GRU over the window at a coarser step
    (``gru_stride`` s) for context beyond the convolutions: whether a stretch sits
    at the level the fetal trace had 20 min earlier. Convolutions first because
    they train an order of magnitude faster on a CPU and run as a handful of
    batched operations in Triton. Input ``signal [B, T, F]``, output
    ``p_false [B, T]`` (a sigmoid inside the graph).
    """

    def __init__(self, n_features: int = 11, width: int = 48, kernel: int = 3,
                 dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256), gru_hidden: int = 0,
                 gru_stride: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        self.inp = nn.Conv1d(n_features, width, 1)
        self.blocks = nn.ModuleList(_DilatedBlock(width, d, kernel, dropout) for d in dilations)
        self.gru_stride = gru_stride
        self.gru = nn.GRU(width, gru_hidden, batch_first=True, bidirectional=True) if gru_hidden else None
        self.out = nn.Conv1d(width + (2 * gru_hidden if gru_hidden else 0), 1, 1)

    def logits(self, signal: torch.Tensor) -> torch.Tensor:
        x = self.inp(signal.transpose(1, 2))
        for block in self.blocks:
            x = block(x)
        if self.gru is not None:
            coarse = F.avg_pool1d(x, self.gru_stride, ceil_mode=True)
            h, _ = self.gru(coarse.transpose(1, 2))
            context = F.interpolate(h.transpose(1, 2), size=x.shape[2], mode="nearest")
            x = torch.cat([x, context], dim=1)
        return self.out(x)[:, 0, :]

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(signal))


class FalseSignalEnsemble(nn.Module):
    """The mean probability of several :class:`FalseSignalNet` trained alike from different seeds.

    Why: on the FHRMA tuning part five seeds of one configuration gave live F1
    0.78-0.84 (docs/EVALUATION.md); which seed lands where is luck, and the
    mean of the five is as good as the best one without having to pick it.
    One graph on Triton, so a window costs the members' sum and no more round trips.
    """

    def __init__(self, members: list[FalseSignalNet]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(signal) for m in self.members]).mean(dim=0)


class FalseSignalServed(nn.Module):
    """What Triton serves: ``signal [B, T, F]`` -> ``false_fraction [B, 1]``, ``p_false [B, T]``.

    ``false_fraction`` is the mean probability over the seconds with FHR signal
    (feature 1, ``fhr_valid``): one number per window for metrics and evidence.
    """

    def __init__(self, net: FalseSignalNet | FalseSignalEnsemble) -> None:
        super().__init__()
        self.net = net

    def forward(self, signal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.net(signal)
        valid = signal[:, :, 1]
        fraction = (p * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1.0)
        return fraction.unsqueeze(1), p


def minute_summary(window: torch.Tensor, seconds_per_step: int = 60) -> torch.Tensor:
    """``window [B, T, 4]`` at 1 Hz -> per-minute summaries ``[B, T/60, 8]`` (inside the graph).

    Per minute: share of valid FHR; FHR mean relative to the hour's mean (a
    baseline-relative level: decelerations and tachycardia); FHR standard
    deviation and range (variability); lowest FHR relative to the hour (depth of
    decelerations); UC mean and peak; maternal HR mean. Lost seconds never count.
    """
    b, t, c = window.shape
    m = t // seconds_per_step
    x = window[:, : m * seconds_per_step].reshape(b, m, seconds_per_step, c)
    fhr, uc, mhr, valid = x[..., FHR], x[..., UC], x[..., MHR], x[..., VALID]
    n = valid.sum(dim=2).clamp(min=1.0)
    share = valid.mean(dim=2)
    mean = (fhr * valid).sum(dim=2) / n
    hour = (mean * share).sum(dim=1, keepdim=True) / share.sum(dim=1, keepdim=True).clamp(min=1e-3)
    var = (((fhr - mean.unsqueeze(2)) ** 2) * valid).sum(dim=2) / n
    big = 1e3
    high = torch.where(valid > 0, fhr, torch.full_like(fhr, -big)).amax(dim=2)
    low = torch.where(valid > 0, fhr, torch.full_like(fhr, big)).amin(dim=2)
    has = share > 0
    rng = torch.where(has, high - low, torch.zeros_like(high))
    low_rel = torch.where(has, low - hour, torch.zeros_like(low))
    level = torch.where(has, mean - hour, torch.zeros_like(mean))
    return torch.stack([share, level, var.sqrt(), rng, low_rel, uc.mean(dim=2), uc.amax(dim=2), mhr.mean(dim=2)], dim=2)


class AcidaemiaLstm(nn.Module):
    """Probability of umbilical-artery pH < 7.05 and < 7.15 from the last hour of CTG.

    ``window [B, 3600, 4]`` (1 Hz, models/serving/features.py) -> per-minute summaries
    (:func:`minute_summary`) -> LSTM -> ``risk [B, 2]``. Per-minute input was
    chosen over 1 Hz after comparison (docs/EVALUATION.md): with 28 acidaemic
    records a 3600-step recurrence overfits and trains slowly; minute summaries
    keep what FIGO reads (level, variability, deceleration depth, contractions).
    Also ``minute_risk [B, 60]``: the pH < 7.05 risk after each minute, the
    course of the hour for the bed view.
    """

    def __init__(self, hidden: int = 16, dropout: float = 0.2) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size=8, hidden_size=hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 2)

    def logits(self, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.summary_logits(minute_summary(window))

    def summary_logits(self, summaries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same from per-minute summaries ``[B, M, 8]`` (cross-fitting summarises each hour once)."""
        h, _ = self.lstm(summaries)
        per_minute = self.head(self.drop(h))  # [B, M, 2]
        return per_minute[:, -1], per_minute[:, :, 0]

    def forward(self, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        last, course = self.logits(window)
        return torch.sigmoid(last), torch.sigmoid(course)
