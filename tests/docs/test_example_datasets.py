"""Every example dataset in datasets/examples loads, with its ground truth beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from calib.io import load, read_campaign
from calib.presets import load_preset

EXAMPLES = Path(__file__).resolve().parents[2] / "datasets" / "examples"
FILES = sorted(EXAMPLES.glob("*.h5"))


def test_there_are_examples() -> None:
    assert any("pulse_response" in f.name for f in FILES)


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_example_loads_completely_with_truth(path: Path) -> None:
    frames = load(path)
    assert frames, f"{path.name} holds no campaign"
    for campaign, frame in frames.items():
        data = read_campaign(path, campaign)
        assert data.attrs["status"] == "complete"
        assert data.attrs["idn"].startswith("EMU,AIMC-XBAR")
        assert len(frame) > 0 and frame["conductance"].notna().all()
    kind = path.name.split("_")[0]
    truth = load_preset(EXAMPLES / f"{kind}_truth.json")
    assert truth["provenance"]["source"] == "emulator ground truth"
