"""One way from a resource string to a connected chip (calib.runtime.chips)."""

from __future__ import annotations

import pytest

from calib.errors import CalibError
from calib.runtime.chips import chip_resource, connect, open_chip


def test_no_resource_starts_the_embedded_chip_of_the_asked_kind_and_shape() -> None:
    with open_chip(None, kind="pcm", seed=3, shape=(8, 12)) as chip:
        assert chip.technology == "pcm"
        assert tuple(chip.shape) == (8, 12)
        assert "PCM" in chip.identity()


def test_a_given_resource_is_used_as_it_is() -> None:
    with chip_resource("TCPIP::192.0.2.1::5025::SOCKET", kind="pcm") as resource:
        assert resource == "TCPIP::192.0.2.1::5025::SOCKET"


def test_a_bench_that_cannot_be_read_is_a_one_line_error(tmp_path) -> None:
    bad = tmp_path / "bench.json"
    bad.write_text("{not json")
    with pytest.raises(CalibError) as info:
        connect(f"bench:{bad}")
    assert str(bad) in str(info.value) and "\n" not in str(info.value)
