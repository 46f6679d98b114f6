"""PCM inference noise: programming noise, power-law drift and 1/f read noise.

The model is aihwkit's ``PCMLikeNoiseModel`` (REFERENCES.md [R8]) parametrized by a preset's
``pcm`` section (datasets/PRESET.md), all in siemens and seconds. With x = g / g_max:

* programming: g_prog = max(g_T + σ_prog(x_T)·ξ, 0), σ_prog = Σ_k c_k x_T^k;
* drift exponent, drawn once per device from the *target*: ν = |μ_ν(x_T) + σ_ν(x_T)·ξ|,
  with μ_ν, σ_ν either ``clipped-log`` (clip(a·ln x + b, lo, hi), x ≥ 1e-7) or ``table``
  (linear in ln x, constant outside the table); with ``drift.sign = "signed"`` (a fitted
  technology-neutral relaxation, not aihwkit's model) ν = μ_ν + σ_ν·ξ may be negative: the
  conductance then relaxes up, and ln g(t)/g(t0) has mean −μ_ν·ln(t/t0) and SD σ_ν·ln(t/t0);
* at t_inference after programming, t = t_inference + t0:
  g(t) = g_prog·(t/t0)^(−ν), then read noise
  g ← max(g + g·Q_s(x)·√ln((t + t_read)/(2 t_read))·ξ, 0), Q_s = min(a / max(x, x_floor)^b, c),
  with x from ``g_prog`` or ``g_T`` (``read_noise.conductance``), plus an optional white read
  noise of ``read_noise.white_s`` siemens (std) per read.

The equations are :mod:`simulator.devices.pcm_equations`, the one implementation the fitter
(numpy) evaluates too; this module parses a section and draws the random process.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from simulator.devices.pcm_equations import (
    PUBLISHED_PCM_SECTION,
    clipped_log,
    interp_log_table,
    min_power_q,
    polynomial_sigma,
    read_time_factor,
)

__all__ = ["PUBLISHED_PCM_SECTION", "PCMNoiseModel"]


@dataclass
class PCMNoiseModel:
    """PCM programming/drift/read-noise model (siemens, seconds); see the module docstring."""

    g_max_s: float
    t0_s: float
    t_read_s: float
    prog_coefficients_s: tuple[float, ...]
    drift_form: str
    mu_nu: dict[str, Any]
    sigma_nu: dict[str, Any]
    drift_table: dict[str, torch.Tensor] | None
    read_a: float
    read_b: float
    read_c: float
    read_x_floor: float
    read_conductance: str = "g_prog"
    read_white_s: float = 0.0
    #: "absolute": ν ~ |N(μ_ν, σ_ν)| (aihwkit's PCM model); "signed": ν ~ N(μ_ν, σ_ν), a
    #: conductance may relax up (ν < 0) as well as down (e.g. RRAM after write-verify)
    drift_sign: str = "absolute"

    @classmethod
    def from_section(cls, pcm: Mapping[str, Any]) -> PCMNoiseModel:
        """Parse and check a preset's ``pcm`` section; ValueError names the bad field."""
        if not isinstance(pcm, Mapping):
            raise ValueError("pcm section must be an object")
        try:
            g_max = _positive(pcm, "g_max_s")
            t0 = _positive(pcm, "t0_s")
            t_read = _positive(pcm, "t_read_s")
            prog = pcm["prog_noise"]
            if prog.get("form") != "polynomial":
                raise ValueError(f"pcm.prog_noise.form {prog.get('form')!r} is not 'polynomial'")
            coeffs = tuple(float(c) for c in prog["coefficients_s"])
            if not coeffs or not all(math.isfinite(c) for c in coeffs):
                raise ValueError("pcm.prog_noise.coefficients_s must be finite numbers")
            drift = pcm["drift"]
            form = drift.get("form")
            table = None
            if form == "clipped-log":
                mu = {k: float(drift["mu_nu"][k]) for k in ("a", "b", "lo", "hi")}
                sig = {k: float(drift["sigma_nu"][k]) for k in ("a", "b", "lo", "hi")}
            elif form == "table":
                table = {
                    k: torch.as_tensor(drift[k], dtype=torch.float64)
                    for k in ("x", "mu_nu", "sigma_nu")
                }
                if len({v.numel() for v in table.values()}) != 1 or table["x"].numel() < 1:
                    raise ValueError("pcm.drift table arrays x, mu_nu, sigma_nu differ in length")
                if not bool((table["x"] > 0).all()) or not bool(
                    (table["x"][1:] > table["x"][:-1]).all()
                ):
                    raise ValueError("pcm.drift.x must be positive and increasing")
                mu, sig = {}, {}
            else:
                raise ValueError(f"pcm.drift.form {form!r} is not 'clipped-log' or 'table'")
            sign = drift.get("sign", "absolute")
            if sign not in ("absolute", "signed"):
                raise ValueError(f"pcm.drift.sign {sign!r} is not 'absolute' or 'signed'")
            read = pcm["read_noise"]
            if read.get("form") != "min-power":
                raise ValueError(f"pcm.read_noise.form {read.get('form')!r} is not 'min-power'")
            conductance = read.get("conductance", "g_prog")
            if conductance not in ("g_prog", "g_T"):
                raise ValueError(f"pcm.read_noise.conductance {conductance!r}: use g_prog or g_T")
            return cls(
                g_max_s=g_max,
                t0_s=t0,
                t_read_s=t_read,
                prog_coefficients_s=coeffs,
                drift_form=form,
                mu_nu=mu,
                sigma_nu=sig,
                drift_table=table,
                read_a=float(read["a"]),
                read_b=float(read["b"]),
                read_c=float(read["c"]),
                read_x_floor=float(read.get("x_floor", 1e-3)),
                read_conductance=conductance,
                read_white_s=float(read.get("white_s", 0.0)),
                drift_sign=sign,
            )
        except KeyError as exc:
            raise ValueError(f"pcm section lacks {exc.args[0]!r}") from None
        except TypeError as exc:
            raise ValueError(f"pcm section has a malformed field: {exc}") from None

    # ----------------------------------------------------------------- components
    def prog_noise_std(self, g_target: torch.Tensor) -> torch.Tensor:
        """σ_prog(g_T) in siemens."""
        return polynomial_sigma(self.prog_coefficients_s, g_target / self.g_max_s)

    def drift_parameters(self, g_target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ_ν, σ_ν) at the target conductance."""
        x = g_target / self.g_max_s
        if self.drift_table is None:
            mu, sig = self.mu_nu, self.sigma_nu
            return clipped_log(x, **mu), clipped_log(x, **sig)
        t = self.drift_table
        return interp_log_table(x, t["x"], t["mu_nu"]), interp_log_table(x, t["x"], t["sigma_nu"])

    def read_noise_q(self, g: torch.Tensor) -> torch.Tensor:
        """Q_s(x), the relative read-noise amplitude."""
        x = g / self.g_max_s
        return min_power_q(x, self.read_a, self.read_b, self.read_c, self.read_x_floor)

    def read_noise_time_factor(self, t_inference: float) -> float:
        """√ln((t + t_read)/(2 t_read)) with t = t_inference + t0."""
        return float(read_time_factor(t_inference + self.t0_s, self.t_read_s))

    # ----------------------------------------------------------------- process
    def program(
        self, g_target: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Programmed conductances and drift exponents, (g_prog, ν), drawn once."""
        xi = torch.randn(g_target.shape, generator=generator, device=g_target.device)
        g_prog = torch.clamp(g_target + self.prog_noise_std(g_target) * xi, min=0.0)
        mu, sig = self.drift_parameters(g_target)
        xi = torch.randn(g_target.shape, generator=generator, device=g_target.device)
        nu = mu + sig * xi
        return g_prog, nu if self.drift_sign == "signed" else nu.abs()

    def at_time(
        self,
        g_prog: torch.Tensor,
        nu: torch.Tensor,
        g_target: torch.Tensor,
        t_inference: float,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Conductances read ``t_inference`` seconds after programming (drift + read noise)."""
        if not t_inference >= 0:
            raise ValueError(f"t_inference must be >= 0 s, got {t_inference}")
        t = t_inference + self.t0_s
        g = g_prog * (t / self.t0_s) ** (-nu)
        x_ref = g_prog if self.read_conductance == "g_prog" else g_target
        sigma = g * self.read_noise_q(x_ref) * self.read_noise_time_factor(t_inference)
        if self.read_white_s > 0:
            sigma = torch.sqrt(sigma * sigma + self.read_white_s**2)
        xi = torch.randn(g.shape, generator=generator, device=g.device)
        return torch.clamp(g + sigma * xi, min=0.0)


def _positive(section: Mapping[str, Any], key: str) -> float:
    value = float(section[key])
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"pcm.{key} must be a positive number, got {section[key]!r}")
    return value
