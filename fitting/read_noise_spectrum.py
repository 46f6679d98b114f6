"""Read noise from a few long records: per-device spectral (1/f^α) fits and the model's Q_s.

For each device, the one-sided power spectral density (PSD, S²/Hz) of its conductance record
is estimated with Welch's method (:func:`scipy.signal.welch`, Hann window, 50 % overlap) and
fitted with

    S_G(f) = A · f^(−α) + W    (A: PSD at 1 Hz, S²/Hz; W: white floor, S²/Hz)

by the Whittle (gamma) likelihood of the Welch estimates: each estimate P_k is S_G(f_k)
times χ²_ν/ν with ν the equivalent degrees of freedom of the overlapped segments (Welch
1967; computed from the window). Neighbouring bins are correlated through the window, so the
covariance is the sandwich H⁻¹JH⁻¹ with the bins' power correlations (also from the window),
not the inverse Hessian alone. The floor W is fitted whenever its covariance is finite (a
floor left out while it still bends the top of the band biases α low by several SE:
benchmarks/RESULTS.md, "Uncertainty coverage"); it is reported as identified
(``white_identified``, ``white_s``) only when it improves the likelihood by more than
:data:`WHITE_MARGIN`.

Relation to the model's read-noise term (``datasets/PRESET.md``, aihwkit's PCM model):
σ_read(t)² = g² · Q_s² · ln((t + t_read)/(2 t_read)) is the one-sided 1/f PSD
S_G(f) = g² Q_s²/f integrated from f_lo = 1/(t + t_read) to f_hi = 1/(2 t_read). Hence

- Q_s = sqrt(A₁)/ḡ, with A₁ the PSD at 1 Hz of a fit with α fixed at 1 (``q_s``); this is
  what feeds the preset's Q_s(x) = a/x^b (fitted over the devices by least squares in
  ln Q_s vs ln x, :func:`read_noise_from_spectra`);
- with the free exponent, ``q_s_band`` = sqrt(∫_{f1}^{f2} A f^(−α) df / ln(f2/f1))/ḡ over
  the fitted band [f1, f2] is the Q_s that gives the same 1/f variance in that band; it
  equals ``q_s`` when α = 1. An α far from 1 means the model's ln-law extrapolation of the
  variance beyond the measured band is not supported by the data (said in the notes);
- the white floor is a per-read variance W·fs/2 (``white_s`` = sqrt(W fs/2), S), the
  preset's ``read_noise.white_s``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, signal

from fitting.pcm_data import RepeatedReadSample
from fitting.pcm_model import PUBLISHED, min_power_q
from fitting.pcm_read_noise import X_FLOOR, QFit, ReadNoiseFit
from fitting.traces import FitInputError

__all__ = [
    "LONG_RECORD_READS",
    "DeviceSpectrum",
    "fit_device_spectrum",
    "fit_record_spectra",
    "is_long_record",
    "read_noise_from_spectra",
    "spectral_read_noise_fit",
    "welch_psd",
]

#: a record needs this many evenly spaced reads for the spectral path
LONG_RECORD_READS = 1024
#: Welch segments: the largest power of two <= reads / SEGMENTS_PER_RECORD (at least 256)
SEGMENTS_PER_RECORD = 8
#: the lowest fitted bin (bins below are distorted by the mean removal and window leakage)
FIRST_BIN = 4
#: the white floor counts as identified when it lowers the NLL by more than this
WHITE_MARGIN = 5.0
#: an octave band whose mean P/S deviates by more than this many SE marks a misfit
MISFIT_Z = 5.0
#: relative deviation of the sampling intervals still counted as evenly spaced
SPACING_RTOL = 1e-3


def _window_factors(nperseg: int, n_segments: int, step: int) -> tuple[float, np.ndarray]:
    """(ν, ρ) of a Hann Welch estimate: equivalent degrees of freedom (Welch 1967, eq. for
    overlapped segments) and the power correlation of bins 0, 1, 2 apart (flat spectrum)."""
    h = signal.get_window("hann", nperseg)
    h2 = np.sum(h * h)
    c = np.zeros(n_segments)
    for m in range(1, n_segments):
        lag = m * step
        if lag < nperseg:
            c[m] = np.sum(h[: nperseg - lag] * h[lag:]) / h2
    m = np.arange(1, n_segments)
    nu = 2 * n_segments / (1 + 2 * np.sum((1 - m / n_segments) * c[1:] ** 2))
    t = np.arange(nperseg)
    rho = np.array(
        [abs(np.sum(h * h * np.exp(-2j * np.pi * j * t / nperseg))) ** 2 / h2**2 for j in (0, 1, 2)]
    )
    return float(nu), rho


def welch_psd(
    g_s: np.ndarray, fs_hz: float, nperseg: int | None = None
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, int]:
    """One-sided Welch PSD of a record: (f Hz, P S²/Hz, ν, bin power correlations, nperseg)."""
    g = np.asarray(g_s, dtype=float)
    n = g.size
    if nperseg is None:
        nperseg = max(256, 2 ** int(np.floor(np.log2(max(n // SEGMENTS_PER_RECORD, 1)))))
    if nperseg > n:
        raise FitInputError(f"a record of {n} reads is shorter than the segment ({nperseg})")
    step = nperseg // 2
    f, p = signal.welch(g, fs=fs_hz, window="hann", nperseg=nperseg, noverlap=nperseg - step)
    n_seg = (n - nperseg) // step + 1
    nu, rho = _window_factors(nperseg, n_seg, step)
    return f, p, nu, rho, nperseg


@dataclass
class DeviceSpectrum:
    """Spectral read-noise fit of one device's record (SI units; SE = standard error)."""

    device_id: int
    mean_s: float
    n_reads: int
    fs_hz: float
    nperseg: int
    dof: float  # equivalent degrees of freedom of one Welch estimate
    band_hz: tuple[float, float]
    alpha: float
    alpha_se: float
    psd_1hz: float  # A (S²/Hz) at 1 Hz
    psd_1hz_se: float
    white: float | None  # W (S²/Hz) as fitted; None when not fitted (no finite covariance)
    white_se: float | None
    q_s: float  # sqrt(A1)/mean with α fixed at 1 (the model's Q_s)
    q_s_se: float
    q_s_band: float  # Q_s equivalent of the free-α fit over the band
    misfit_z: float  # largest octave-band deviation of P from the model, in SE
    white_identified: bool = False  # W improves the likelihood by > WHITE_MARGIN
    frequency_hz: np.ndarray = field(repr=False, default_factory=lambda: np.array([]))
    psd: np.ndarray = field(repr=False, default_factory=lambda: np.array([]))

    @property
    def fits(self) -> bool:
        """The 1/f^α + white model describes the spectrum (no octave off by > MISFIT_Z SE)."""
        return bool(self.misfit_z <= MISFIT_Z)

    @property
    def white_s(self) -> float | None:
        """Per-read white noise std (S): sqrt(W·fs/2)."""
        if self.white is None or not self.white_identified:
            return None
        return float(np.sqrt(self.white * self.fs_hz / 2))

    def model(self, f_hz: np.ndarray) -> np.ndarray:
        """Fitted PSD (S²/Hz) at ``f_hz``."""
        f = np.asarray(f_hz, dtype=float)
        return self.psd_1hz * f**-self.alpha + (self.white or 0.0)

    def section(self) -> dict[str, Any]:
        return {
            "device": self.device_id,
            "mean_s": self.mean_s,
            "n_reads": self.n_reads,
            "fs_hz": self.fs_hz,
            "nperseg": self.nperseg,
            "welch_dof": self.dof,
            "band_hz": list(self.band_hz),
            "alpha": self.alpha,
            "alpha_se": self.alpha_se,
            "psd_1hz_s2_per_hz": self.psd_1hz,
            "psd_1hz_se_s2_per_hz": self.psd_1hz_se,
            "white_s2_per_hz": self.white,
            "white_identified": self.white_identified,
            "white_se_s2_per_hz": self.white_se,
            "white_s": self.white_s,
            "q_s": self.q_s,
            "q_s_se": self.q_s_se,
            "q_s_band": self.q_s_band,
            "misfit_z": self.misfit_z,
            "fits_power_law": self.fits,
        }


def _whittle(
    f: np.ndarray, p: np.ndarray, nu: float, rho: np.ndarray, alpha: float | None, white: bool
) -> tuple[np.ndarray, float, np.ndarray]:
    """Fit ln A, [α], [ln W] by the Whittle likelihood; (θ, NLL, sandwich covariance)."""
    lf = np.log(f)
    free_alpha = alpha is None

    def unpack(th: np.ndarray) -> tuple[float, float, float]:
        a = th[1] if free_alpha else alpha
        lw = th[-1] if white else -np.inf
        return th[0], a, lw

    def log_s(th: np.ndarray) -> np.ndarray:
        la, a, lw = unpack(th)
        return np.logaddexp(la - a * lf, lw) if white else la - a * lf

    def nll(th: np.ndarray) -> float:
        ls = log_s(th)
        return float(0.5 * nu * np.sum(ls + p * np.exp(-ls)))

    # start: a log-log line through the lower half of the band, the floor from the top decile
    half = f <= np.sqrt(f[0] * f[-1])
    slope, icpt = np.polyfit(lf[half], np.log(p[half]), 1)
    th0 = [icpt + 0.25]  # ln of a mean of χ²/ν is below the ln of the mean by ~1/ν..0.58
    if free_alpha:
        th0.append(float(np.clip(-slope, -1.0, 4.0)))
    if white:
        th0.append(float(np.log(np.median(p[f >= np.quantile(f, 0.9)]))))
    th0 = np.array(th0)
    best = None
    for start in (th0, th0 + 0.5, th0 - 0.5):
        res = optimize.minimize(
            nll,
            start,
            method="Nelder-Mead",
            options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 20000},
        )
        res = optimize.minimize(nll, res.x, method="BFGS")
        if best is None or res.fun < best.fun:
            best = res
    th = best.x
    # d ln S / dθ per bin (analytic), expected Hessian H and correlated-score J (sandwich)
    la, a, _ = unpack(th)
    ls = log_s(th)
    part = np.exp(la - a * lf - ls)  # share of the power-law term
    cols = [part]
    if free_alpha:
        cols.append(-lf * part)
    if white:
        cols.append(1 - part)
    d = np.column_stack(cols)
    hess = 0.5 * nu * d.T @ d
    jmat = hess * rho[0]
    for lag in (1, 2):
        cross = d[:-lag].T @ d[lag:]
        jmat = jmat + 0.5 * nu * rho[lag] * (cross + cross.T)
    try:
        hinv = np.linalg.inv(hess)
        cov = hinv @ jmat @ hinv
    except np.linalg.LinAlgError:
        cov = np.full((th.size, th.size), np.nan)
    return th, float(best.fun), cov


def _misfit(f: np.ndarray, p: np.ndarray, model: np.ndarray, nu: float, rho: np.ndarray) -> float:
    """Largest |z| over octave bands of mean(P/S) − 1 (variance with the bin correlations)."""
    ratio = p / model
    edges = 2.0 ** np.arange(np.floor(np.log2(f[0])), np.ceil(np.log2(f[-1])) + 1)
    worst = 0.0
    for lo, hi in itertools.pairwise(edges):
        sel = (f >= lo) & (f < hi)
        m = int(sel.sum())
        if m < 4:
            continue
        var = 2.0 / nu / m * (rho[0] + 2 * rho[1] * (m - 1) / m + 2 * rho[2] * (m - 2) / m)
        worst = max(worst, abs(float(ratio[sel].mean()) - 1) / np.sqrt(var))
    return float(worst)


def fit_device_spectrum(
    g_s: np.ndarray,
    fs_hz: float,
    device_id: int = 0,
    nperseg: int | None = None,
    f_min_hz: float | None = None,
    f_max_hz: float | None = None,
) -> DeviceSpectrum:
    """Fit S_G(f) = A f^(−α) [+ W] to one evenly sampled record (reads ``g_s`` at ``fs_hz``).

    The band runs from bin :data:`FIRST_BIN` (or ``f_min_hz``) to below the Nyquist bin (or
    ``f_max_hz``).
    """
    g = np.asarray(g_s, dtype=float)
    if g.size < LONG_RECORD_READS or not np.all(np.isfinite(g)):
        raise FitInputError(
            f"device {device_id}: a spectral fit needs >= {LONG_RECORD_READS} finite reads, "
            f"got {int(np.isfinite(g).sum())} of {g.size}"
        )
    f, p, nu, rho, nseg = welch_psd(g, fs_hz, nperseg)
    lo = FIRST_BIN * fs_hz / nseg if f_min_hz is None else f_min_hz
    hi = f[-1] if f_max_hz is None else f_max_hz
    sel = (f >= lo * (1 - 1e-9)) & (f < hi * (1 - 1e-9)) & (f > 0)
    if sel.sum() < 8:
        raise FitInputError(f"device {device_id}: fewer than 8 PSD bins in [{lo:g}, {hi:g}] Hz")
    if np.any(p[sel] <= 0):
        raise FitInputError(f"device {device_id}: the record is constant (zero PSD)")
    fb, pb = f[sel], p[sel]
    th2, nll2, cov2 = _whittle(fb, pb, nu, rho, None, False)
    th3, nll3, cov3 = _whittle(fb, pb, nu, rho, None, True)
    use_white = bool(np.all(np.isfinite(cov3)))
    th, cov = (th3, cov3) if use_white else (th2, cov2)
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    amp, alpha = float(np.exp(th[0])), float(th[1])
    white = float(np.exp(th[2])) if use_white else None
    # the model's Q_s: α fixed at 1, the floor as in the free fit
    th1, _, cov1 = _whittle(fb, pb, nu, rho, 1.0, use_white)
    mean = float(np.mean(g))
    q_s = float(np.sqrt(np.exp(th1[0]))) / abs(mean)
    q_se = q_s * 0.5 * float(np.sqrt(max(cov1[0, 0], 0.0)))
    f1, f2 = float(fb[0]), float(fb[-1])
    if abs(alpha - 1) < 1e-9:
        band_var = amp * np.log(f2 / f1)
    else:
        band_var = amp * (f2 ** (1 - alpha) - f1 ** (1 - alpha)) / (1 - alpha)
    q_band = float(np.sqrt(band_var / np.log(f2 / f1))) / abs(mean)
    model = amp * fb**-alpha + (white or 0.0)
    return DeviceSpectrum(
        device_id=int(device_id),
        mean_s=mean,
        n_reads=int(g.size),
        fs_hz=float(fs_hz),
        nperseg=nseg,
        dof=nu,
        band_hz=(f1, f2),
        alpha=alpha,
        alpha_se=float(sd[1]),
        psd_1hz=amp,
        psd_1hz_se=amp * float(sd[0]),
        white=white,
        white_se=None if white is None else white * float(sd[2]),
        q_s=q_s,
        q_s_se=q_se,
        q_s_band=q_band,
        misfit_z=_misfit(fb, pb, model, nu, rho),
        white_identified=bool(use_white and nll3 < nll2 - WHITE_MARGIN),
        frequency_hz=fb,
        psd=pb,
    )


def _sampling_rate(t: np.ndarray) -> float | None:
    """fs (Hz) of evenly spaced read times, else None."""
    t = t[np.isfinite(t)]
    if t.size < 2:
        return None
    dt = np.diff(t)
    step = float(np.median(dt))
    if not step > 0 or np.max(np.abs(dt - step)) > SPACING_RTOL * step:
        return None
    return 1.0 / step


def is_long_record(sample: RepeatedReadSample, keep: np.ndarray) -> bool:
    """Every kept device has >= LONG_RECORD_READS finite, evenly spaced reads."""
    if not keep.any():
        return False
    for i in np.flatnonzero(keep):
        use = np.isfinite(sample.conductance_s[i])
        if use.sum() < LONG_RECORD_READS or _sampling_rate(sample.time_s[i][use]) is None:
            return False
    return True


def fit_record_spectra(sample: RepeatedReadSample, keep: np.ndarray) -> list[DeviceSpectrum]:
    """Spectral fit of every kept device (finite reads, evenly spaced; see the module doc)."""
    out = []
    for i in np.flatnonzero(keep):
        use = np.isfinite(sample.conductance_s[i])
        fs = _sampling_rate(sample.time_s[i][use])
        dev = int(sample.device_ids[i]) if sample.device_ids is not None else int(i)
        if fs is None or use.sum() < LONG_RECORD_READS:
            raise FitInputError(
                f"{sample.source}: device {dev}: the spectral read-noise fit needs >= "
                f"{LONG_RECORD_READS} evenly spaced reads"
            )
        out.append(fit_device_spectrum(sample.conductance_s[i][use], fs, dev))
    return out


@dataclass
class SpectralQ:
    """Q_s(x) = min(a/x^b, c) from per-device spectral Q_s values."""

    a: float
    b: float
    c: float
    white_s: float
    se: dict[str, float]
    b_identified: bool
    notes: list[str]


def read_noise_from_spectra(
    spectra: list[DeviceSpectrum], x: np.ndarray, x_floor: float
) -> SpectralQ:
    """Fit ln Q_s = ln a − b ln x over devices (normalized conductances ``x``).

    With >= 3 devices at >= 2 distinct x: ordinary least squares, standard errors from the
    residual scatter (device-to-device variation dominates the per-device errors). With 2:
    the line through them, standard errors not available. With one level: b is the published
    0.65 (not identified) and a is fitted. c is set inactive: max(0.2, Q_s at the lowest x).
    """
    q = np.array([s.q_s for s in spectra])
    q_se = np.array([s.q_s_se for s in spectra])
    lx = np.log(np.maximum(np.asarray(x, dtype=float), x_floor))
    notes: list[str] = []
    se: dict[str, float] = {}
    n = q.size
    distinct = np.unique(np.round(lx, 6)).size
    if distinct >= 2:
        design = np.column_stack([np.ones(n), -lx])
        coef, *_ = np.linalg.lstsq(design, np.log(q), rcond=None)
        ln_a, b = float(coef[0]), float(coef[1])
        if n >= 3:
            resid = np.log(q) - design @ coef
            s2 = float(resid @ resid) / (n - 2)
            s2 = max(s2, float(np.mean((q_se / q) ** 2)))
            cov = s2 * np.linalg.inv(design.T @ design)
            se = {"a": float(np.exp(ln_a) * np.sqrt(cov[0, 0])), "b": float(np.sqrt(cov[1, 1]))}
        else:
            notes.append(
                f"read noise: Q_s(x) through {n} devices; standard errors not "
                f"available ({n} devices)"
            )
        b_ok = True
    else:
        b = PUBLISHED["read_q"]["b"]
        w = 1.0 / np.maximum(q_se / q, 1e-12) ** 2
        ln_a = float(np.sum(w * (np.log(q) + b * lx)) / np.sum(w))
        if n >= 2:
            resid = np.log(q) + b * lx - ln_a
            se["a"] = float(np.exp(ln_a) * np.sqrt(max(resid @ resid / (n - 1), 1 / w.sum()) / n))
        else:
            se["a"] = float(np.exp(ln_a) / np.sqrt(w.sum()))
        notes.append(
            f"read noise: one conductance level, the exponent b of Q_s(x) is not identified "
            f"(published b = {b} used)"
        )
        b_ok = False
    a = float(np.exp(ln_a))
    c = max(PUBLISHED["read_q"]["c"], float(min_power_q(np.exp(lx.min()), a, b, np.inf, x_floor)))
    whites = [s.white_s for s in spectra if s.white_s is not None]
    white = float(np.median(whites)) if whites else 0.0
    if not whites:
        notes.append("read noise: no device shows a white floor in its spectrum (white_s = 0)")
    alphas = np.array([s.alpha for s in spectra])
    alpha_se = np.array([s.alpha_se for s in spectra])
    off = np.abs(alphas - 1) > 3 * np.maximum(alpha_se, 1e-12)
    if off.any():
        listed = ", ".join(
            f"{s.device_id}: {s.alpha:.2f} ± {s.alpha_se:.2f}"
            for s, o in zip(spectra, off, strict=True)
            if o
        )
        notes.append(
            "read noise: spectral exponent α differs from the model's 1/f (α = 1) by > 3 SE "
            f"for device(s) {listed}; Q_s is the α = 1 amplitude over the measured band, and "
            "the model's ln-law extrapolation of the read variance beyond it is not supported"
        )
    bad = [s.device_id for s in spectra if not s.fits]
    if bad:
        notes.append(
            f"read noise: the spectrum of device(s) {bad} departs from 1/f^α + white by > "
            f"{MISFIT_Z:g} SE in an octave (e.g. random telegraph noise)"
        )
    return SpectralQ(a, b, c, white, se, b_ok, notes)


def spectral_read_noise_fit(
    sample: RepeatedReadSample, keep: np.ndarray, g_max_s: float, convention: str = "auto"
) -> ReadNoiseFit:
    """The preset's read-noise model from per-device spectra of a few long records.

    x per device is its record's mean conductance / g_max (``g_prog``; ``auto`` means
    ``g_prog``, the convention of aihwkit's code) or its target / g_max (``g_T``). The
    per-device fits are kept in the preset (``read_noise.spectra``).
    """
    if convention not in ("auto", "g_prog", "g_T"):
        raise FitInputError(f"read-noise conductance must be auto, g_prog or g_T, not {convention}")
    if not keep.any():
        raise FitInputError(f"{sample.source}: no usable device for the spectral read-noise fit")
    spectra = fit_record_spectra(sample, keep)
    conv = "g_prog" if convention == "auto" else convention
    if conv == "g_T":
        if sample.target_s is None:
            raise FitInputError("read noise with the g_T convention needs target conductances")
        x = sample.target_s[keep] / g_max_s
    else:
        x = np.array([s.mean_s for s in spectra]) / g_max_s
    sq = read_noise_from_spectra(spectra, x, X_FLOOR)
    q = QFit(sq.a, sq.b, sq.c, sq.white_s, False, dict(sq.se), float("nan"), len(spectra))
    t = sample.time_s[keep]
    t = t[np.isfinite(t)]
    notes = [
        f"read noise: Q_s from the 1/f spectra of {len(spectra)} long record(s) (Welch, "
        f"{spectra[0].band_hz[0]:.3g}-{spectra[0].band_hz[1]:.3g} Hz); Q_s = sqrt(S_G(1 Hz))/G "
        "with S_G = G² Q_s²/f, the PSD whose integral gives the model's ln-law read variance",
        *sq.notes,
    ]
    return ReadNoiseFit(
        q,
        conv,
        {conv: q},
        "read-noise spectra (Welch)",
        (float(t.min()), float(t.max())) if t.size else (0.0, 0.0),
        (float(np.min(x)), float(np.max(x))),
        np.asarray(x, dtype=float),
        np.array([s.q_s for s in spectra]),
        np.array([s.q_s_se for s in spectra]),
        np.asarray(x, dtype=float),
        np.array([s.q_s for s in spectra]),
        {},
        notes,
        [s.section() for s in spectra],
    )
