"""Ground truth of the emulated chip as a preset (for validating fits)."""

from __future__ import annotations

from calib.presets import Preset, make_preset, provenance
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip

__all__ = ["truth_preset"]


def truth_preset(chip: ScpiCrossbarChip) -> Preset:
    """The emulator's hidden device population as a validated preset document.

    The ``device`` section always; the ``pcm`` section (datasets/PRESET.md) for PCM chips.
    """
    truth = chip.ground_truth()
    prov = provenance(None, source="emulator ground truth", emulator=truth.get("emulator", {}))
    sections = {"pcm": truth["pcm"]} if "pcm" in truth else {}
    return make_preset(truth["device"], prov, **sections)
