"""Transfer-algorithm defaults that must equal aihwkit 1.2.0's (issue 13).

aihwkit's ``TransferCompound`` (Tiki-Taka) scales ``fast_lr`` by the SGD learning rate by
default (``scale_fast_lr = True``, aihwkit/simulator/configs/compounds.py; the C++ in
rpu_transfer_device.cpp returns fast_lr·lr); ``ChoppedTransferCompound`` (c-TTv2) does not.
A user who writes ``TikiTaka()`` must get aihwkit's A-matrix rate.
"""

from __future__ import annotations

import pytest

from simulator.config import ChoppedTTv2, TikiTaka


def test_tiki_taka_scales_the_fast_rate_by_the_sgd_rate_as_aihwkit_does() -> None:
    assert TikiTaka().scale_fast_lr is True
    assert ChoppedTTv2().scale_fast_lr is False


def test_transfer_defaults_equal_aihwkits_own() -> None:
    compounds = pytest.importorskip("aihwkit.simulator.configs.compounds")
    assert TikiTaka().scale_fast_lr == compounds.TransferCompound().scale_fast_lr
    assert ChoppedTTv2().scale_fast_lr == compounds.ChoppedTransferCompound().scale_fast_lr
    assert TikiTaka().fast_lr == compounds.TransferCompound().fast_lr
