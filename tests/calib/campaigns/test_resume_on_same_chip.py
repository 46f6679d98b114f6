"""``--resume`` continues a campaign only on the chip that started it (issue 18.2)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from calib.campaigns import PulseResponseParams, measure_pulse_response
from calib.cli import main
from calib.errors import CalibError
from calib.io.hdf5 import read_campaign
from instruments.drivers.scpi_crossbar import ScpiCrossbarChip
from instruments.emulator.server import running_emulator
from instruments.visa_transport import InstrumentError

#: Every pulse setting explicit, so the parameters are the same on every technology and
#: only the instrument differs.
PARAMS = PulseResponseParams(
    n_devices=24,
    chunk_devices=8,
    seed=3,
    n_up=6,
    n_down=6,
    cycles=1,
    amplitude_up_v=1.2,
    amplitude_down_v=-1.2,
    width_s=1e-6,
)


class _StopAfter:
    """A chip that fails (like a dropped instrument) on its n-th pulse train."""

    def __init__(self, chip: ScpiCrossbarChip, n: int) -> None:
        self._chip, self._left = chip, n

    def __getattr__(self, name: str):
        return getattr(self._chip, name)

    def pulse_train_with_reads(self, *args, **kw):
        self._left -= 1
        if self._left == 0:
            raise InstrumentError("TCPIP::x::1::SOCKET", "FETC:COND?", "dropped")
        return self._chip.pulse_train_with_reads(*args, **kw)


def _interrupted(path: Path, kind: str = "reram", seed: int = 5) -> None:
    with (
        running_emulator(kind, seed=seed, shape=(16, 16)) as res,
        ScpiCrossbarChip(res) as chip,
        pytest.raises(InstrumentError),
    ):
        measure_pulse_response(_StopAfter(chip, 2), PARAMS, path)
    assert read_campaign(path, "pulse_response").n_devices == 8


@pytest.mark.parametrize(
    ("kind", "seed", "what"),
    [("ecram", 5, "technology"), ("pcm", 5, "technology"), ("reram", 6, "identity")],
)
def test_resume_on_another_chip_is_refused_naming_both(
    tmp_path: Path, kind: str, seed: int, what: str
) -> None:
    path = tmp_path / "reram.h5"
    _interrupted(path)
    before = path.read_bytes()
    with running_emulator(kind, seed=seed, shape=(16, 16)) as res, ScpiCrossbarChip(res) as chip:
        with pytest.raises(CalibError) as err:
            measure_pulse_response(chip, PARAMS, path, resume=True)
        other = chip.identity()
    message = str(err.value)
    assert "\n" not in message and what in message
    assert "EMU,AIMC-XBAR-RERAM,SN00000005" in message and other in message
    assert path.read_bytes() == before  # the refused resume left the file as it was
    assert not path.with_name("reram.h5.lock").exists()


def test_resume_on_the_same_chip_after_a_firmware_update_string_is_allowed() -> None:
    from calib.campaigns.base import _same_chip

    assert _same_chip("EMU,AIMC-XBAR-RERAM,SN1,0.2.0", "EMU,AIMC-XBAR-RERAM,SN1,0.3.0")
    assert not _same_chip("EMU,AIMC-XBAR-RERAM,SN1,0.2.0", "EMU,AIMC-XBAR-RERAM,SN2,0.2.0")
    assert not _same_chip("BENCH,8x8,A | B", "BENCH,8x8,A | C")


def test_override_continues_and_records_the_other_chip(tmp_path: Path) -> None:
    path = tmp_path / "reram.h5"
    _interrupted(path)
    with running_emulator("reram", seed=6, shape=(16, 16)) as res, ScpiCrossbarChip(res) as chip:
        measure_pulse_response(chip, PARAMS, path, resume=True, resume_on_other_chip=True)
    data = read_campaign(path, "pulse_response")
    assert data.attrs["status"] == "complete" and data.n_devices == 24
    (record,) = data.attrs["resumed_on_other_chip"]
    assert record["idn"].split(",")[2] == "SN00000006" and record["rows_complete_before"] == 8


def test_resume_on_the_same_chip_still_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    whole, part = tmp_path / "whole.h5", tmp_path / "part.h5"
    with running_emulator("reram", seed=5, shape=(16, 16)) as res, ScpiCrossbarChip(res) as chip:
        measure_pulse_response(chip, PARAMS, whole)
    _interrupted(part)
    with running_emulator("reram", seed=5, shape=(16, 16)) as res, ScpiCrossbarChip(res) as chip:
        measure_pulse_response(chip, PARAMS, part, resume=True)
    a, b = read_campaign(whole, "pulse_response"), read_campaign(part, "pulse_response")
    assert "resumed_on_other_chip" not in b.attrs
    np.testing.assert_array_equal(a.conductance_s, b.conductance_s)


def test_cli_refuses_then_accepts_with_the_override_flag(tmp_path: Path, capsys) -> None:
    path = tmp_path / "x.h5"
    args = ["measure", "pulse-response", "--devices", "8", "--chunk", "4", "--seed", "1"]
    args += ["--n-up", "4", "--n-down", "4", "--cycles", "1", "--amplitude", "1.2"]
    args += ["--width", "1e-6", "-o", str(path)]
    assert main(args) == 0
    with h5py.File(path, "r+") as f:  # as if stopped after the first chunk
        f["pulse_response"].attrs["rows_complete"] = 4
        f["pulse_response"].attrs["status"] = "interrupted"
    capsys.readouterr()
    assert main([*args, "--chip", "ecram", "--resume"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the identity and bar
    assert err.startswith("calib: error:") and "AIMC-XBAR-RERAM" in err and "-ECRAM" in err
    assert "--resume-on-other-chip" in err
    assert main([*args, "--chip", "ecram", "--resume", "--resume-on-other-chip"]) == 0
    data = read_campaign(path, "pulse_response")
    assert data.attrs["status"] == "complete" and data.n_devices == 8
    assert data.attrs["resumed_on_other_chip"][0]["technology"] == "ecram"
