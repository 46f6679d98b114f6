"""The preset document (simulator.preset_document.Preset): validated once where it is built
(a file, a dict), read-only, the same JSON on disk as before; Estimate records carry a fit's
values, errors and methods into the preset and back."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from calib.cli import main
from calib.errors import CalibError
from calib.presets import json_text, load_preset, make_preset, provenance, save_preset
from calib.presets.export import aihwkit_device
from fitting.population import Estimate, estimate_fields, estimates_from_section
from simulator import preset_document
from simulator.preset_document import Preset, PresetError
from simulator.presets import analog_config, device_config

ROOT = Path(__file__).resolve().parents[2]
#: written by ``calib fit pulse-response`` (12 emulated ReRAM devices, seed 3) at commit
#: 708bde2, before the Preset type existed: the format a user's existing presets have
OLD_FITTED = ROOT / "tests" / "fixtures" / "presets" / "fitted_soft_bounds_v1.json"


def _message(exc: BaseException) -> str:
    """A one-line error without its ``SOURCE: `` prefix."""
    text = str(exc)
    assert "\n" not in text
    return text.split(": ", 1)[1]


def test_a_preset_written_before_the_type_loads_and_saves_byte_identical(tmp_path: Path) -> None:
    preset = load_preset(OLD_FITTED)
    assert isinstance(preset, Preset)
    assert (preset.kind, preset.technology, preset.model) == ("pulsed", "reram", "soft-bounds")
    assert preset["device"]["uncertainty_method"]["dw_min"] == "fisher"
    out = save_preset(preset, tmp_path / "again.json")
    assert out.read_text() == OLD_FITTED.read_text()  # the on-disk format is unchanged
    assert json_text(preset, "again") + "\n" == OLD_FITTED.read_text()


@pytest.mark.parametrize(
    ("name", "kind", "technology"),
    [("reram", "pulsed", "reram"), ("ecram", "none", "ecram"), ("pcm", "pcm", "pcm")],
)
def test_committed_example_presets_load_with_their_kind_and_technology(
    name: str, kind: str, technology: str
) -> None:
    preset = load_preset(ROOT / "datasets" / "examples" / f"{name}_truth.json")
    assert (preset.kind, preset.technology) == (kind, technology)


def _bad_document() -> dict:
    doc = json.loads(OLD_FITTED.read_text())
    doc["device"]["parameters"]["dw_min_std"] = -0.1
    return doc


def test_a_bad_preset_gives_the_same_one_line_error_from_load_export_and_simulator(
    tmp_path: Path, capsys
) -> None:
    doc = _bad_document()
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    expected = "invalid preset at device/parameters/dw_min_std: a spread must be >= 0, got -0.1"

    with pytest.raises(CalibError) as loaded:
        load_preset(path)
    assert str(loaded.value) == f"{path}: {expected}"

    out = tmp_path / "out.json"
    assert main(["export", str(path), "--to", "aihwkit", "-o", str(out)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert err == [f"calib: error: {path}: {expected}"] and not out.exists()

    with pytest.raises(CalibError) as exported:
        aihwkit_device(copy.deepcopy(doc))
    with pytest.raises(PresetError) as simulated:
        device_config(copy.deepcopy(doc))
    with pytest.raises(PresetError) as bare:  # sections without the file envelope
        device_config({"device": copy.deepcopy(doc["device"])})
    assert {_message(e.value) for e in (loaded, exported, simulated, bare)} == {expected}


def test_a_preset_is_validated_once_from_the_file_to_the_tile(tmp_path: Path, monkeypatch) -> None:
    calls: list[str] = []
    check = preset_document.check_document

    def counting(document, source, envelope=True):
        calls.append(source)
        return check(document, source, envelope)

    monkeypatch.setattr(preset_document, "check_document", counting)
    preset = load_preset(OLD_FITTED)
    assert calls == [str(OLD_FITTED)]
    save_preset(preset, tmp_path / "copy.json")
    aihwkit_device(preset)
    device_config(preset)
    analog_config(preset, use_per_device=True)
    assert calls == [str(OLD_FITTED)]  # save, export and the simulator trust the type
    device_config(preset.to_dict())  # a plain dict is a new boundary: checked again
    assert calls == [str(OLD_FITTED), "<preset>"]


def test_a_preset_is_read_only_and_does_not_follow_edits_of_its_input() -> None:
    doc = json.loads(OLD_FITTED.read_text())
    preset = Preset.from_dict(doc, "doc")
    doc["device"]["parameters"]["dw_min"] = -1.0
    doc["per_device"]["w_max"][0] = None
    assert preset["device"]["parameters"]["dw_min"] > 0
    assert preset["per_device"]["w_max"][0] is not None
    with pytest.raises(TypeError):
        preset["device"] = {}  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.source = "elsewhere"  # type: ignore[misc]
    editable = preset.to_dict()
    editable["schema_version"] = 2
    assert preset["schema_version"] == 1 and Preset.from_dict(preset) is preset


def test_per_device_arrays_of_different_lengths_are_refused_everywhere() -> None:
    doc = json.loads(OLD_FITTED.read_text())
    doc["per_device"]["w_max"].append(4e-5)
    with pytest.raises(PresetError, match="per_device: arrays differ in length"):
        Preset.from_dict(doc)
    with pytest.raises(CalibError, match="per_device: arrays differ in length"):
        make_preset(doc["device"], provenance(None), per_device=doc["per_device"])


def test_estimates_of_an_old_preset_give_back_its_three_dicts() -> None:
    preset = load_preset(OLD_FITTED)
    device = preset["device"]
    estimates = estimates_from_section(device, preset.provenance["diagnostics"])
    assert estimates["dw_min_dtod"] == Estimate(
        device["parameters"]["dw_min_dtod"],
        device["uncertainty"]["dw_min_dtod"],
        "fisher",
        naive=preset.provenance["diagnostics"]["naive_dw_min_dtod"],
    )
    fields = estimate_fields(estimates)
    assert fields["parameters"] == device["parameters"]
    assert fields["uncertainty_method"] == device["uncertainty_method"]
    # the read noise's error sits next to the parameters' (read_noise_s is not a parameter)
    unc = {k: v for k, v in device["uncertainty"].items() if k != "read_noise_s"}
    assert fields["uncertainty"] == unc


def test_a_fits_estimates_round_trip_through_the_preset_json(tmp_path: Path) -> None:
    from fitting import PulseTraces, fit_pulse_response
    from instruments.chip import PulseSpec, PulseTrainSpec, pulse_sequence
    from instruments.emulator.physics import PulsedDeviceArray, chip_truth

    spec = PulseTrainSpec(200, PulseSpec(1.2, 1e-6), 200, PulseSpec(-1.2, 1e-6), cycles=1)
    array = PulsedDeviceArray(chip_truth("reram"), (4, 6), 7)
    g = array.pulse_train(
        np.arange(24),
        spec.n_up,
        spec.n_down,
        spec.cycles,
        spec.read_every,
        (1.2, 1e-6),
        (-1.2, 1e-6),
    )
    fit = fit_pulse_response(
        PulseTraces(g.T, pulse_sequence(spec)), model="soft-bounds", predictive_check=False
    )
    # the naive spreads of the estimates are the diagnostics the preset records
    assert fit.estimates["dw_min_dtod"].naive == fit.diagnostics["naive_dw_min_dtod"]
    assert fit.estimates["w_max_dtod"].naive == fit.diagnostics["naive_w_max_dtod"]
    assert fit.estimates["w_max_dtod"].naive >= fit.estimates["w_max_dtod"].value
    prov = provenance(None, diagnostics=fit.diagnostics)
    path = save_preset(make_preset(fit.device_section(), prov, fit.per_device), tmp_path / "p.json")
    loaded = load_preset(path)
    back = estimates_from_section(loaded["device"], loaded.provenance["diagnostics"])
    assert list(back) == list(fit.estimates)
    stored_naive = {"dw_min_dtod", "w_max_dtod"}  # the diagnostics keep these two
    for name, est in fit.estimates.items():
        expected = est if name in stored_naive else dataclasses.replace(est, naive=None)
        assert back[name] == expected, name
    assert loaded["device"]["uncertainty"]["read_noise_s"] == fit.read_noise_stderr
