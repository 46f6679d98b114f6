"""One characterize-then-fit recipe for the chain, the demo and the example datasets.

They differ only in sizes; the campaigns' settings come from the chip technology's defaults.
"""

from __future__ import annotations

from calib.campaigns.parameters import DriftParams, ProgrammingParams, ReadNoiseParams
from calib.campaigns.technology import PROGRAM_DEFAULTS, PULSE_RESPONSE_DEFAULTS, default_levels
from calib.recipes import CHAIN_FILES, EXAMPLE_FILES, PCM_LEVELS, RecipeSizes, plan


def test_pcm_recipe_is_programming_drift_and_read_noise_on_the_technology_defaults() -> None:
    campaigns = plan("pcm", 96, seed=7, chunk_devices=32)
    assert [c.stage for c in campaigns] == ["programming", "drift", "read noise"]
    assert [c.file_name for c in campaigns] == ["prog.h5", "drift.h5", "read_noise.h5"]
    programming, drift, noise = (c.params for c in campaigns)
    assert (type(programming), type(drift), type(noise)) == (
        ProgrammingParams,
        DriftParams,
        ReadNoiseParams,
    )
    assert [p.seed for p in (programming, drift, noise)] == [7, 8, 9]
    tolerance, amplitude, width = PROGRAM_DEFAULTS["pcm"]
    for p in (programming, drift, noise):
        assert p.levels_s == default_levels("pcm", PCM_LEVELS)
        assert (p.tolerance_s, p.pulse_amplitude_v, p.pulse_width_s) == (
            tolerance,
            amplitude,
            width,
        )
        assert (p.n_devices, p.chunk_devices) == (96, 32)
    assert drift.n_times == DriftParams().n_times  # the campaign's own default
    assert noise.n_reads == 100


def test_pulsed_recipe_takes_the_technologys_train_unless_sized() -> None:
    (ecram,) = plan("ecram", 64)
    default = PULSE_RESPONSE_DEFAULTS["ecram"]
    p = ecram.params
    assert (p.n_up, p.n_down, p.cycles, p.width_s) == (
        default.n_up,
        default.n_down,
        default.cycles,
        default.width_s,
    )
    assert (p.amplitude_up_v, p.amplitude_down_v) == (default.amplitude_v, -default.amplitude_v)
    assert ecram.file_name == CHAIN_FILES["pulse_response"]
    (sized,) = plan("reram", 64, sizes=RecipeSizes(pulse_train=(100, 90, 3)))
    assert (sized.params.n_up, sized.params.n_down, sized.params.cycles) == (100, 90, 3)


def test_example_sizes_use_one_seed_and_the_kind_in_file_names() -> None:
    sizes = RecipeSizes(levels=8, drift_times=20, seed_step=0, file_names=EXAMPLE_FILES)
    campaigns = plan("pcm", 64, seed=2026, sizes=sizes)
    assert [c.file_name for c in campaigns] == [
        "pcm_programming.h5",
        "pcm_drift.h5",
        "pcm_read_noise.h5",
    ]
    assert {c.params.seed for c in campaigns} == {2026}
    assert len(campaigns[0].params.levels_s) == 8
    assert campaigns[1].params.n_times == 20
