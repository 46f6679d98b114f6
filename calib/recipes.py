"""Characterize-then-fit recipes: which campaigns each chip kind is measured with, and its fit.

One home for what ``calib demo``, the validation chain (``benchmarks/bench_validate.py``,
the validation-target tests) and the example datasets (``datasets/examples/make_examples.py``)
run; they differ only in sizes (:class:`RecipeSizes`):

* PCM (inference presets): programming, drift and read-noise campaigns on ``levels`` target
  levels, then the PCM noise-model fit;
* pulsed kinds (ReRAM, ECRAM; training presets): one pulse-response campaign, then a device
  fit (``auto``: every family, selected by information criterion).

Pulses and program-and-verify settings are the chip technology's defaults
(:mod:`calib.campaigns.technology`); ECRAM's small steps need its longer default trains.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from calib.campaigns.parameters import (
    CampaignParams,
    DriftParams,
    ProgrammingParams,
    PulseResponseParams,
    ReadNoiseParams,
)
from calib.campaigns.technology import default_levels

if TYPE_CHECKING:
    from calib.campaigns.base import ProgressCallback
    from instruments.chip import ChipInterface

__all__ = [
    "CHAIN_FILES",
    "EXAMPLE_FILES",
    "PCM_LEVELS",
    "Campaign",
    "RecipeSizes",
    "characterize",
    "fit_characterized",
    "fit_files",
    "plan",
]

PCM_LEVELS = 16  # target levels of the validation chain's PCM campaigns

#: campaign -> file name (``{kind}`` is the chip kind) of the chain and the demo
CHAIN_FILES = {
    "programming": "prog.h5",
    "drift": "drift.h5",
    "read_noise": "read_noise.h5",
    "pulse_response": "pulse_response.h5",
}
#: file names of the shipped example datasets (``datasets/examples``)
EXAMPLE_FILES = {campaign: f"{{kind}}_{campaign}.h5" for campaign in CHAIN_FILES}

#: ``stage name -> progress callback`` (or None) for each campaign of :func:`characterize`
ProgressFactory = Callable[[str], "ProgressCallback | None"]


@dataclass(frozen=True)
class RecipeSizes:
    """How big a characterization is, beyond its device count and seed.

    ``levels``: PCM target levels; ``drift_times``/``noise_reads``: reads per device of the
    drift and read-noise campaigns (``None``: the campaign's default); ``pulse_train``:
    ``(n_up, n_down, cycles)`` of the pulse response (``None``: the technology's);
    ``seed_step``: campaign ``k`` of a kind uses seed ``seed + k * seed_step``;
    ``file_names``: campaign -> file name (may contain ``{kind}``).
    """

    levels: int = PCM_LEVELS
    drift_times: int | None = None
    noise_reads: int = 100
    pulse_train: tuple[int, int, int] | None = None
    seed_step: int = 1
    file_names: Mapping[str, str] = field(default_factory=lambda: dict(CHAIN_FILES))


@dataclass(frozen=True)
class Campaign:
    """One campaign of a recipe: its stage label, parameters, measurement and file name."""

    stage: str
    params: CampaignParams
    measure: Callable[..., Path]
    file_name: str


def plan(
    kind: str,
    n_devices: int,
    *,
    seed: int = 1,
    chunk_devices: int = 4096,
    sizes: RecipeSizes | None = None,
) -> list[Campaign]:
    """The campaigns that characterize a ``kind`` chip (``reram``, ``ecram``, ``pcm``)."""
    from calib.campaigns import (
        measure_drift,
        measure_programming,
        measure_pulse_response,
        measure_read_noise,
    )

    sizes = sizes or RecipeSizes()
    common: dict[str, Any] = {"n_devices": n_devices, "chunk_devices": chunk_devices}

    def name(campaign: str) -> str:
        return sizes.file_names[campaign].format(kind=kind)

    if kind == "pcm":
        programmed = ProgrammingParams.for_technology(
            kind, **common, levels_s=default_levels(kind, sizes.levels), seed=seed
        )
        shared = {
            k: getattr(programmed, k)
            for k in ("levels_s", "tolerance_s", "pulse_amplitude_v", "pulse_width_s")
        }
        drift_times = {} if sizes.drift_times is None else {"n_times": sizes.drift_times}
        step = sizes.seed_step
        drift = DriftParams(**common, **shared, **drift_times, seed=seed + step)
        noise = ReadNoiseParams(**common, **shared, n_reads=sizes.noise_reads, seed=seed + 2 * step)
        return [
            Campaign("programming", programmed, measure_programming, name("programming")),
            Campaign("drift", drift, measure_drift, name("drift")),
            Campaign("read noise", noise, measure_read_noise, name("read_noise")),
        ]
    train = {}
    if sizes.pulse_train is not None:
        train = dict(zip(("n_up", "n_down", "cycles"), sizes.pulse_train, strict=True))
    params = PulseResponseParams.for_technology(kind, **common, **train, seed=seed)
    return [Campaign("pulse response", params, measure_pulse_response, name("pulse_response"))]


def characterize(
    kind: str,
    chip: ChipInterface,
    n_devices: int,
    out: Path,
    *,
    seed: int = 1,
    chunk_devices: int = 4096,
    progress: ProgressFactory | None = None,
    overwrite: bool = False,
    sizes: RecipeSizes | None = None,
) -> list[Path]:
    """Run ``kind``'s campaigns (:func:`plan`) on ``chip``; returns the dataset files in ``out``.

    ``progress(stage)`` gives each campaign's progress callback; ``overwrite`` replaces
    existing files.
    """
    report = progress or (lambda stage: None)
    campaigns = plan(kind, n_devices, seed=seed, chunk_devices=chunk_devices, sizes=sizes)
    return [
        c.measure(chip, c.params, out / c.file_name, report(c.stage), overwrite=overwrite)
        for c in campaigns
    ]


def fit_files(kind: str, files: list[Path], preset: Path, model: str = "auto") -> tuple[Path, Any]:
    """Fit the files of :func:`characterize` into ``preset``; returns (path, fit result).

    PCM: the PCM noise model from the three campaigns; pulsed kinds: device family ``model``.
    """
    if kind == "pcm":
        from calib.fit.pcm import fit_pcm_files

        path, fit, _ = fit_pcm_files(files, preset)
        return path, fit
    from calib.fit.pulse_response import fit_pulse_response_file

    return fit_pulse_response_file(files[0], preset, model=model)


def fit_characterized(kind: str, files: list[Path], out: Path) -> Path:
    """Fit the files of :func:`characterize` into ``out/preset.json`` (pulsed: ``auto``)."""
    return fit_files(kind, files, out / "preset.json")[0]
