"""Every SCPI command of instruments/emulator/COMMANDS.md, driven through PyVISA only."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import pyvisa

from instruments.emulator.crossbar import EmulatedCrossbar
from instruments.emulator.scpi import CommandTable, ErrorQueue
from instruments.emulator.server import running_emulator
from instruments.visa_transport import VisaTransport

SHAPE = (8, 8)


@pytest.fixture
def t() -> Iterator[VisaTransport]:
    """A PyVISA session to a fresh emulated ReRAM chip (8x8, seed 3)."""
    with running_emulator("reram", seed=3, shape=SHAPE) as resource:
        transport = VisaTransport(resource)
        try:
            yield transport
        finally:
            transport.close()


def codes(t: VisaTransport) -> list[int]:
    return [int(e.split(",")[0]) for e in t.errors()]


def f4(values) -> np.ndarray:
    return np.asarray(values, dtype="<f4")


def no_reply(t: VisaTransport, query: str, payload: np.ndarray | None = None) -> None:
    """``query`` fails without any response (IEEE 488.2 §6.3): the next line read is the
    answer of a ``*OPC?`` sent after it, not an empty line."""
    if payload is None:
        t.write(query)
    else:
        t.write_block(query, payload)
    assert t.query("*OPC?") == "1"


# --------------------------------------------------------------------------- per command
def _idn(t):
    assert t.query("*IDN?") == "EMU,AIMC-XBAR-RERAM,SN00000003,0.2.0"


def _opc(t):
    assert t.query("*OPC?") == "1"


def _rst(t):
    t.command("SOUR:PULS:AMPL 2.0;:EMU:SEED 4")
    g_before = t.query_block("MEAS:COND?")
    t.command("*RST")
    assert float(t.query("SOUR:PULS:AMPL?")) == 1.2
    assert t.query("*IDN?").endswith("SN00000004,0.2.0")  # rebuilt from the new seed
    assert not np.allclose(t.query_block("MEAS:COND?"), g_before, atol=2e-6)


def _cls(t):
    assert t.query("*ESR?") == "128"  # the power-on event
    t.write("BOGUS")
    t.write("*CLS")
    assert t.query("SYST:ERR:COUN?") == "0"
    assert t.query("*ESR?") == "0"  # *CLS clears the event register too


def _status(query: str, busy: str) -> Callable:
    def check(t):
        t.command("*CLS")
        assert t.query(query) == "0"
        t.write("BOGUS")
        assert t.query(query) == busy
        t.write("*CLS")

    return check


def _esr(t):
    """Latched event bits (IEEE 488.2 §11.5.1): PON at power-on, CME/EXE/DDE by class."""
    assert t.query("*ESR?") == "128"  # power on
    assert t.query("*ESR?") == "0"  # reading clears it
    t.write("BOGUS")
    assert t.query("*ESR?") == "32"  # command error
    assert t.query("*ESR?") == "0"  # latched until read, although the error is still queued
    t.write("SOUR:PULS:AMPL nan")  # -222
    assert t.query("*ESR?") == "16"  # execution error
    t.write("SOUR:PULS:AMPL volts;:SOUR:PULS:WIDT -1")  # -104 and -222
    assert t.query("*ESR?") == "48"  # command and execution error
    t.write("*OPC")
    assert t.query("*ESR?") == "1"  # operation complete
    t.errors()


def _ese(t):
    assert t.query("*ESE?") == "0"
    t.command("*ESE 36")
    assert t.query("*ESE?") == "36"
    t.command("*CLS;*RST")  # neither changes the enable register
    assert t.query("*ESE?") == "36"
    t.write("*ESE 256")
    assert codes(t) == [-222]


def _sre(t):
    assert t.query("*SRE?") == "0"
    t.command("*CLS;*ESE 32;*SRE 36")  # ESB and the error queue bit
    assert t.query("*SRE?") == "36"
    assert t.query("*STB?") == "0"
    t.write("BOGUS")
    assert t.query("*STB?") == str(4 + 32 + 64)  # EAV, ESB and the summary MSS
    t.command("*CLS")
    assert t.query("*STB?") == "0"
    t.command("*SRE 64")  # bit 6 cannot be enabled
    assert t.query("*SRE?") == "0"


def _tst(t):
    assert t.query("*TST?") == "0"


def _err_next(query: str) -> Callable:
    def check(t):
        t.write("BOGUS;:SENS:VOLT 9")
        assert t.query(query).startswith("-113,")
        assert t.query(query).startswith("-222,")
        assert t.query(query) == '0,"No error"'

    return check


def _err_all(t):
    t.write("BOGUS;:SENS:VOLT 9")
    text = t.query("SYST:ERR:ALL?")
    assert text.startswith("-113,") and ",-222," in text
    assert t.query("SYST:ERR:ALL?") == '0,"No error"'


def _conf(t):
    conf = json.loads(t.query("SYST:CONF?"))
    assert (conf["rows"], conf["cols"], conf["technology"]) == (8, 8, "reram")
    assert conf["safe_operating_area"]["max_read_voltage_v"] == 0.5


def _form(t):
    t.command("FORM:DATA REAL,64")
    assert t.query("FORM:DATA?") == "REAL,64"
    assert t.query_block("MEAS:COND?", "<f8").size == 64
    t.command("FORM:DATA REAL")
    assert t.query("FORM:DATA?") == "REAL,32"
    t.write("FORM:DATA ASC")
    t.write("FORM:DATA REAL,16")
    assert codes(t) == [-224, -224]


def _clock_advance(t):
    t0 = float(t.query("SYST:CLOC:TIME?"))
    t.command("SYST:CLOC:ADV 1e5")
    assert float(t.query("SYST:CLOC:TIME?")) == pytest.approx(t0 + 1e5, abs=1e-6)
    t.write("SYST:CLOC:ADV -1")
    assert codes(t) == [-222]


def _clock_mode(t):
    assert t.query("SYST:CLOC:MODE?") == "VIRT"
    t.command("SYST:CLOC:ADV 50")
    t.command("SYST:CLOC:MODE REAL")
    assert t.query("SYST:CLOC:MODE?") == "REAL"
    t1 = float(t.query("SYST:CLOC:TIME?"))
    t.command("SYST:CLOC:ADV 0.02")  # real mode: this sleeps
    assert t1 >= 50 and float(t.query("SYST:CLOC:TIME?")) >= t1 + 0.02
    t.command("SYST:CLOC:MODE VIRT")
    assert t.query("SYST:CLOC:MODE?") == "VIRT"


def _tpr(t):
    t.command("ROUT:SEL:DEV 1,1;:PULS:APPL 1,1.2,1e-6;:SYST:CLOC:ADV 10;:ROUT:SEL:BLOC 1,0,1,2")
    since = t.query_block("SYST:CLOC:TPR?", "<f8")
    assert since[1] == pytest.approx(10.0, abs=1e-4) and since[0] > since[1]


def _soa(name: str, good: float, bad: float) -> Callable:
    def check(t):
        t.command(f"{name} {good!r}")
        assert float(t.query(f"{name}?")) == good
        t.write(f"{name} {bad!r}")
        assert codes(t) == [-222]
        assert float(t.query(f"{name}?")) == good

    return check


def _selection(command: str, count: int, text: str) -> Callable:
    def check(t):
        t.command(command)
        assert t.query("ROUT:SEL:COUN?") == str(count)
        assert t.query("ROUT:SEL?") == text
        assert t.query_block("MEAS:COND?").size == count

    return check


def _sel_list(t):
    t.write_block("ROUT:SEL:LIST", np.array([63, 0, 9], dtype="<i4"), "<i4")
    t.check_errors()
    assert t.query("ROUT:SEL:COUN?") == "3"
    truth = t.query_block("EMU:GTRU? conductance", "<f8")
    g = t.query_block("MEAS:COND?")
    np.testing.assert_allclose(g, truth[[63, 0, 9]], atol=1.5e-6)  # 6 sigma of read noise


def _setting(name: str, value: str, parse: Callable = float) -> Callable:
    def check(t):
        t.command(f"{name} {value}")
        assert parse(t.query(f"{name}?")) == parse(value)

    return check


def _pulse_apply(t):
    t.command("ROUT:SEL:DEV 2,2;:SENS:AVER 64")
    before = t.query_block("MEAS:COND?")[0]
    t.command("SOUR:PULS:AMPL 1.2;:SOUR:PULS:WIDT 1e-6;:SOUR:PULS:COUN 20;:PULS:APPL")
    mid = t.query_block("MEAS:COND?")[0]
    t.command("PULS:APPL 20,-1.2,1e-6")
    after = t.query_block("MEAS:COND?")[0]
    assert mid > before + 2e-6 and after < mid - 2e-6  # 20 steps of ~0.5 uS each way
    t.write("PULS:APPL 1,1.2")
    assert codes(t) == [-109]


def _meas_current(t):
    t.command("SENS:VOLT 0.1;:SENS:AVER 256")
    g = t.query_block("MEAS:COND?")
    i = t.query_block("MEAS:CURR?")
    np.testing.assert_allclose(i, 0.1 * g, atol=0.1 * 4 * 0.25e-6 / 8)


def _repeat(t):
    r = t.query_block("MEAS:COND:REP? 100").reshape(100, 64)
    assert r.std(axis=0).mean() == pytest.approx(0.25e-6, rel=0.1)  # the read noise
    no_reply(t, "MEAS:COND:REP? 0")  # a failed query answers nothing
    assert codes(t) == [-222]


def _mvm(t):
    t.command("ROUT:SEL:BLOC 0,0,4,8;:SENS:AVER 256")
    g = t.query_block("MEAS:COND?").reshape(4, 8)
    v = f4([[0.1, -0.2, 0.0, 0.05], [0.2, 0.2, 0.2, 0.2]])
    i = t.query_block("MEAS:MVM?", payload=v).reshape(2, 8)
    np.testing.assert_allclose(i, v.astype(float) @ g, atol=5 * 0.4 * 0.25e-6)


def _ptr(t):
    t.command("ROUT:SEL:ROW 0;:SEQ:PTR:DEF 4,1.2,2,-1.2,1e-6,2,2")
    assert t.query("SEQ:STAT?") == "IDLE"
    t.command("SEQ:INIT")
    assert t.query("SEQ:STAT?") == "DONE"
    assert t.query_block("FETC:COND?").size == (1 + 2 * 6 // 2) * 8
    assert t.query_block("FETC:COND? 1,2").size == 16
    times = t.query_block("FETC:TIME?", "<f8")
    assert times.size == 7 and np.all(np.diff(times) > 0)


def _drift(t):
    t.command("ROUT:SEL:COL 3;:PULS:APPL 1,1.2,1e-6")
    t.write_block("SEQ:DRIF:TIM", np.array([1.0, 10.0, 100.0]), "<f8")
    t.command("SEQ:INIT")
    assert t.query_block("FETC:COND?").size == 3 * 8
    np.testing.assert_array_equal(t.query_block("FETC:TIME?", "<f8"), [1.0, 10.0, 100.0])
    assert float(t.query("SYST:CLOC:TIME?")) >= 100.0


def _prog_targets(t):
    t.command("ROUT:SEL:BLOC 0,0,2,2")
    t.write_block("PROG:TARG", f4([50e-6, 60e-6, 70e-6, 80e-6]))
    t.command("PROG:TOL 1e-6;:PROG:MAXI 200;:PROG:INIT")
    g = t.query_block("PROG:RES?")
    conv = t.query_block("PROG:CONV?", "|u1")
    stuck = t.query_block("EMU:GTRU? stuck", "<f8")[[0, 1, 8, 9]] > 0
    ok = conv.astype(bool)
    assert ok[~stuck].all()
    np.testing.assert_allclose(g[ok], f4([50e-6, 60e-6, 70e-6, 80e-6])[ok], atol=1e-6)
    assert np.all(t.query_block("PROG:ITER?", "<i4") >= 0)
    assert np.all(t.query_block("PROG:TIME?", "<f8") <= float(t.query("SYST:CLOC:TIME?")))
    t.command("PROG:TARG 55e-6;:PROG:INIT")  # scalar form: one target for all


def _prog_fetch(query: str, dtype: str) -> Callable:
    def check(t):
        no_reply(t, query)  # before PROG:INIT: no result
        assert codes(t) == [-221]
        t.command("ROUT:SEL:DEV 0,0;:PROG:TARG 60e-6;:PROG:INIT")
        assert t.query_block(query, dtype).size == 1

    return check


def _truth(t):
    truth = json.loads(t.query("EMU:TRUT?"))
    assert truth["device"]["model"] == "soft-bounds" and truth["emulator"]["seed"] == 3


def _gtru(t):
    assert t.query_block("EMU:GTRU? w_max", "<f8").size == 64
    no_reply(t, "EMU:GTRU? nothing")
    assert codes(t) == [-224]


def _seed(t):
    t.command("EMU:SEED 42")
    assert t.query("EMU:SEED?") == "42"
    t.write("EMU:SEED 1.5")
    assert codes(t) == [-224]


def _noise_seed(t):
    reads = []
    for _ in range(2):
        t.command("EMU:NOIS:SEED 7")
        reads.append(t.query_block("MEAS:COND?"))
    np.testing.assert_array_equal(*reads)
    t.write("EMU:NOIS:SEED -1")
    assert codes(t) == [-222]


def _profile(t):
    t.command("SEQ:PTR:DEF 2,1.2,2,-1.2,1e-6,1,1;:SEQ:INIT")
    profile = json.loads(t.query("EMU:PROF?"))
    assert profile["command"] == "SEQ:INIT" and profile["physics_s"] >= 0


COMMAND_CHECKS: dict[str, Callable[[VisaTransport], None]] = {
    "*IDN?": _idn,
    "*RST": _rst,
    "*CLS": _cls,
    "*OPC?": _opc,
    "*OPC": lambda t: t.command("*OPC"),
    "*WAI": lambda t: t.command("*WAI"),
    "*ESR?": _esr,
    "*ESE": _ese,
    "*ESE?": _ese,
    "*SRE": _sre,
    "*SRE?": _sre,
    "*TST?": _tst,
    "*STB?": _status("*STB?", "4"),
    "SYSTem:ERRor?": _err_next("SYST:ERR?"),
    "SYSTem:ERRor:NEXT?": _err_next("SYST:ERR:NEXT?"),
    "SYSTem:ERRor:ALL?": _err_all,
    "SYSTem:ERRor:COUNt?": _status("SYST:ERR:COUN?", "1"),
    "SYSTem:CONFiguration?": _conf,
    "FORMat:DATA": _form,
    "FORMat:DATA?": _form,
    "FORMat": _form,
    "FORMat?": _form,
    "SYSTem:CLOCk:TIME?": _clock_advance,
    "SYSTem:CLOCk:ADVance": _clock_advance,
    "SYSTem:CLOCk:MODE": _clock_mode,
    "SYSTem:CLOCk:MODE?": _clock_mode,
    "SYSTem:CLOCk:TPRogram?": _tpr,
    "SAFE:VMAX": _soa("SAFE:VMAX", 3.0, 25.0),
    "SAFE:VMAX?": _soa("SAFE:VMAX", 3.0, -1.0),
    "SAFE:WMAX": _soa("SAFE:WMAX", 1e-3, 11.0),
    "SAFE:WMAX?": _soa("SAFE:WMAX", 1e-3, -1.0),
    "SAFE:VREAd": _soa("SAFE:VREA", 0.3, 3.0),
    "SAFE:VREAd?": _soa("SAFE:VREA", 0.3, -0.1),
    "SAFE:ICOMpliance": _soa("SAFE:ICOM", 1e-4, 1.0),
    "SAFE:ICOMpliance?": _soa("SAFE:ICOM", 1e-4, -1.0),
    "ROUTe:SELect:DEVice": _selection("ROUT:SEL:DEV 7,7", 1, "DEV 7,7"),
    "ROUTe:SELect:BLOCk": _selection("ROUT:SEL:BLOC 1,2,3,4", 12, "BLOC 1,2,3,4"),
    "ROUTe:SELect:ROW": _selection("ROUT:SEL:ROW 5", 8, "ROW 5"),
    "ROUTe:SELect:COLumn": _selection("ROUT:SEL:COL 6", 8, "COL 6"),
    "ROUTe:SELect:ALL": _selection("ROUT:SEL:DEV 0,0;:ROUT:SEL:ALL", 64, "ALL"),
    "ROUTe:SELect:LIST": _sel_list,
    "ROUTe:SELect:COUNt?": _selection("ROUTE:SELECT:BLOCK 0,0,2,2", 4, "BLOC 0,0,2,2"),
    "ROUTe:SELect?": _selection("rout:sel:row 1", 8, "ROW 1"),
    "SOURce:PULSe:AMPLitude": _setting("SOUR:PULS:AMPL", "-2.5"),
    "SOURce:PULSe:AMPLitude?": _setting("SOURCE:PULSE:AMPLITUDE", "1.5"),
    "SOURce:PULSe:WIDTh": _setting("SOUR:PULS:WIDT", "2e-06"),
    "SOURce:PULSe:WIDTh?": _setting("SOUR:PULS:WIDT", "5e-07"),
    "SOURce:PULSe:PERiod": _setting("SOUR:PULS:PER", "1e-05"),
    "SOURce:PULSe:PERiod?": _setting("SOUR:PULS:PER", "0.0"),
    "SOURce:PULSe:COUNt": _setting("SOUR:PULS:COUN", "7", int),
    "SOURce:PULSe:COUNt?": _setting("SOUR:PULS:COUN", "1", int),
    "PULSe:APPLy": _pulse_apply,
    "SENSe:VOLTage": _setting("SENS:VOLT", "0.1"),
    "SENSe:VOLTage?": _setting("SENS:VOLT", "0.25"),
    "SENSe:AVERage": _setting("SENS:AVER", "16", int),
    "SENSe:AVERage?": _setting("SENS:AVER", "1", int),
    "MEASure:CONDuctance?": _meas_current,
    "MEASure:CURRent?": _meas_current,
    "MEASure:CONDuctance:REPeat?": _repeat,
    "MEASure:MVM?": _mvm,
    "SEQuence:PTRain:DEFine": _ptr,
    "SEQuence:DRIFt:TIMes": _drift,
    "SEQuence:INITiate": _ptr,
    "SEQuence:STATus?": _ptr,
    "FETCh:CONDuctance?": _ptr,
    "FETCh:TIME?": _drift,
    "PROGram:TARGet": _prog_targets,
    "PROGram:TOLerance": _setting("PROG:TOL", "2e-06"),
    "PROGram:TOLerance?": _setting("PROG:TOL", "5e-07"),
    "PROGram:MAXIterations": _setting("PROG:MAXI", "30", int),
    "PROGram:MAXIterations?": _setting("PROG:MAXI", "300", int),
    "PROGram:AMPLitude": _setting("PROG:AMPL", "1.4"),
    "PROGram:AMPLitude?": _setting("PROG:AMPL", "1.0"),
    "PROGram:WIDTh": _setting("PROG:WIDT", "2e-06"),
    "PROGram:WIDTh?": _setting("PROG:WIDT", "1e-06"),
    "PROGram:INITiate": _prog_targets,
    "PROGram:RESult?": _prog_fetch("PROG:RES?", "<f4"),
    "PROGram:ITERations?": _prog_fetch("PROG:ITER?", "<i4"),
    "PROGram:CONVerged?": _prog_fetch("PROG:CONV?", "|u1"),
    "PROGram:TIME?": _prog_fetch("PROG:TIME?", "<f8"),
    "EMU:TRUTh?": _truth,
    "EMU:GTRUth?": _gtru,
    "EMU:SEED": _seed,
    "EMU:SEED?": _seed,
    "EMU:NOISe:SEED": _noise_seed,
    "EMU:PROFile?": _profile,
}


def test_every_registered_command_has_a_check() -> None:
    chip = EmulatedCrossbar("reram", (2, 2), 0)
    registered = {":".join(k) + ("?" if q else "") for k, q, _, _ in chip.table._entries}
    assert registered == set(COMMAND_CHECKS)


@pytest.mark.parametrize("pattern", sorted(COMMAND_CHECKS))
def test_command(t: VisaTransport, pattern: str) -> None:
    COMMAND_CHECKS[pattern](t)
    assert t.errors() == []  # nothing unexpected left on the queue


# --------------------------------------------------------------------------- argument checks
@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("SOUR:PULS:AMPL nan", -222),
        ("SOUR:PULS:AMPL inf", -222),
        ("SOUR:PULS:WIDT -inf", -222),
        ("SENS:VOLT NaN", -222),
        ("SYST:CLOC:ADV inf", -222),
        ("PROG:TOL nan", -222),
        ("PROG:TARG inf", -222),
        ("SOUR:PULS:COUN 2.5", -104),
        ("*IDN? 1", -108),
        ("MEAS:COND:REP? 1e9", -222),
        ("SOUR:PULS:AMPL volts", -104),
        ("SOUR:PULS:AMPL #14abcd", -104),
        ("ROUT:SEL:DEV 8,0", -222),
        ("ROUT:SEL:BLOC 0,0,9,1", -222),
        ("ROUT:SEL:BLOC 0,0,0,1", -222),
        ("ROUT:SEL:ROW -1", -222),
        ("ROUT:SEL:FOO 1", -113),
        ("ROUT:SEL:DEV 1", -109),
        ("ROUT:SEL:DEV 1,2,3", -108),
        ("SEQ:PTR:DEF 1,1.2,1,-1.2,1e-6,1", -109),
        ("SEQ:PTR:DEF 3,1.2,2,-1.2,1e-6,1,2", -224),
        ("SEQ:PTR:DEF 0,1.2,0,-1.2,1e-6,1,1", -224),
        ("SEQ:INIT", -221),
        ("PROG:INIT", -221),
        ("FORM:DATA", -109),
        ("SYST:CLOC:MODE SLOW", -224),
        ("ROUT:SEL:DEV 1,", -104),
        ("ROUT:SEL:DEV 1,,2", -108),
    ],
)
def test_bad_parameters_are_refused_and_change_nothing(
    t: VisaTransport, message: str, code: int
) -> None:
    state = [t.query(q) for q in ("SOUR:PULS:AMPL?", "SOUR:PULS:WIDT?", "SENS:VOLT?")]
    state.append(t.query("ROUT:SEL?"))
    if message.split()[0].endswith("?"):
        no_reply(t, message)
    else:
        t.write(message)
    assert codes(t) == [code]
    assert [t.query(q) for q in ("SOUR:PULS:AMPL?", "SOUR:PULS:WIDT?", "SENS:VOLT?")] == state[:3]
    assert t.query("ROUT:SEL?") == state[3]


@pytest.mark.parametrize(
    ("command", "payload", "code"),
    [
        ("ROUT:SEL:LIST", np.array([64], dtype="<i4"), -222),  # outside the array
        ("ROUT:SEL:LIST", np.array([], dtype="<i4"), 101),  # empty selection
        ("ROUT:SEL:LIST", np.array([1.0, 2.0], dtype="<f2"), -222),  # wrong type reads 1 int
        ("PROG:TARG", f4([50e-6, np.nan] * 32), -222),
        ("PROG:TARG", f4([50e-6] * 63), -222),  # one per selected device
        ("SEQ:DRIF:TIM", np.array([1.0, np.inf]), -222),
        ("SEQ:DRIF:TIM", np.array([10.0, 1.0]), -222),
        ("SEQ:DRIF:TIM", np.array([], dtype="<f8"), -222),
        ("SEQ:DRIF:TIM", np.zeros(3, dtype="<f4"), -161),  # 12 bytes: not whole float64s
    ],
)
def test_bad_blocks_are_refused(t: VisaTransport, command: str, payload, code: int) -> None:
    t.write_block(command, payload, payload.dtype.str)
    assert codes(t) == [code]
    assert t.query("ROUT:SEL?") == "ALL"


def test_bad_mvm_inputs_answer_nothing_and_queue_errors(t: VisaTransport) -> None:
    t.write_block("ROUT:SEL:LIST", np.array([1, 2], dtype="<i4"), "<i4")
    no_reply(t, "MEAS:MVM?", f4([0.1]))  # a LIST is not rectangular
    assert codes(t) == [-221]
    t.command("ROUT:SEL:BLOC 0,0,2,2")
    for v, code in (([0.1, 0.1, 0.1], -222), ([0.1, np.nan], -222), ([0.1, 0.9], -221)):
        no_reply(t, "MEAS:MVM?", f4(v))
        assert codes(t) == [code]
    assert t.query("*IDN?").startswith("EMU")  # nothing left shifted in the stream


def test_failed_query_answers_nothing_and_stream_stays_in_step(t: VisaTransport) -> None:
    """IEEE 488.2 §6.3: a query that fails puts nothing in the output queue (today's
    regression: an empty line was answered, which a real instrument never sends)."""
    no_reply(t, "FETC:COND?")  # nothing to fetch yet: no answer, error queued
    assert codes(t) == [-221]
    no_reply(t, "BOGUS?")
    assert codes(t) == [-113]
    # in a message of several queries, only the ones that succeed answer
    assert t.query("SOUR:PULS:AMPL?;:FETC:COND?;:SENS:VOLT?") == "1.2;0.2"
    assert codes(t) == [-221]


def test_failed_query_on_a_table_that_answers_them() -> None:
    table = CommandTable(answer_failed_queries=True)
    table.add("OK?", lambda a: "1", 0)
    assert table.execute(b"NOPE?;OK?", ErrorQueue()) == ["", "1"]
    assert CommandTable().execute(b"NOPE?;:OK?", ErrorQueue()) == []


def test_error_queue_overflow_keeps_32_entries(t: VisaTransport) -> None:
    t.write(";".join(["BOGUS"] * 40))
    assert t.query("SYST:ERR:COUN?") == "32"
    errors = codes(t)
    assert errors[:31] == [-113] * 31 and errors[31] == -350


def test_chained_commands_short_and_long_forms(t: VisaTransport) -> None:
    t.write(":ROUTE:SELECT:BLOCK 0,0,2,2;:sour:puls:ampl 1.3;:SENSe:VOLT 0.15")
    assert t.errors() == []
    assert t.query("rout:sel:coun?;:SOUR:PULS:AMPL?;:SENSE:VOLTAGE?") == "4;1.3;0.15"


def test_commands_after_a_semicolon_continue_the_previous_path(t: VisaTransport) -> None:
    """SCPI-99 vol. 1, compound headers (and the E5250A guide's example
    ``:ROUT:CONN:RULE ALL,FREE;SEQ ALL,BBM``): without a leading colon a command is
    relative to the previous command's path."""
    t.command("SOUR:PULS:AMPL 1.3;WIDT 2e-6;PER 1e-5;*WAI;COUN 3")  # *WAI keeps the path
    assert t.query("SOUR:PULS:AMPL?;WIDT?;PER?;COUN?") == "1.3;2e-06;1e-05;3"
    t.write("SOUR:PULS:AMPL 1.1;SENS:VOLT 0.15")  # relative: SOUR:PULS:SENS:VOLT
    assert codes(t) == [-113]
    assert t.query("SENS:VOLT?") == "0.2"  # not applied
    t.write("SOUR:PULS:AMPL 1.0")
    t.write("WIDT 1e-6")  # a new message starts at the root again
    assert codes(t) == [-113]


def test_optional_nodes_and_min_max_def_parameters(t: VisaTransport) -> None:
    t.command("FORM REAL,64")  # FORMat[:DATA]
    assert t.query("FORM?") == "REAL,64" and t.query("FORM:DATA?") == "REAL,64"
    t.command("FORM:DATA REAL")
    t.command("SAFE:VMAX MAX")
    assert float(t.query("SAFE:VMAX?")) == 20.0  # the emulator's hardware limit
    t.command("SAFE:VMAX MIN")
    assert float(t.query("SAFE:VMAX?")) == 0.0
    t.command("SAFE:VMAX DEF")
    assert float(t.query("SAFE:VMAX?")) == 5.0


def test_carriage_return_before_the_line_feed_is_white_space(t: VisaTransport) -> None:
    """PyVISA's default write termination is CR LF; IEEE 488.2 §7.4.1.2 makes CR white space."""
    t._inst.write_termination = "\r\n"
    assert t.query("*IDN?").startswith("EMU,AIMC-XBAR-RERAM")
    t.command("SOUR:PULS:AMPL 1.4")
    assert float(t.query("SOUR:PULS:AMPL?")) == 1.4
    t._inst.write_raw(b"SENS:VOLT 0.1\r\n")
    assert t.query("SENS:VOLT?") == "0.1"


# --------------------------------------------------------------------------- safety
def test_safe_operating_area_refuses_and_never_applies(t: VisaTransport) -> None:
    t.command("ROUT:SEL:BLOC 0,0,2,2;:SENS:AVER 64")
    before = t.query_block("MEAS:COND?")
    t.command("SAFE:VMAX 1.0;:SAFE:WMAX 1e-3")
    for message in (
        "PULS:APPL 10,1.2,1e-6",  # amplitude above 1.0 V
        "PULS:APPL 10,-1.2,1e-6",
        "PULS:APPL 10,0.9,2e-3",  # width above 1 ms
        "SOUR:PULS:AMPL 1.5",
        "PROG:AMPL 1.5",
        "SEQ:PTR:DEF 10,1.2,10,-0.9,1e-6,1,1",
        "SENS:VOLT 0.6",  # read voltage above 0.5 V
    ):
        t.write(message)
        assert codes(t) == [-222], message
    # a pulse train defined inside the area is re-checked when it starts
    t.command("SAFE:VMAX 2.0;:SEQ:PTR:DEF 10,1.2,10,-1.2,1e-6,1,1;:SAFE:VMAX 1.0")
    t.write("SEQ:INIT")
    assert codes(t) == [-222]
    # lowering the read limit below the set read voltage blocks reads
    t.command("SENS:VOLT 0.4;:SAFE:VREA 0.3")
    no_reply(t, "MEAS:COND?")
    assert codes(t) == [-221]
    t.command("SAFE:VREA 0.5;:SENS:VOLT 0.2")
    # compliance: 100 uS x 0.2 V = 20 uA > 1 uA
    t.command("SAFE:ICOM 1e-6")
    no_reply(t, "MEAS:COND?")
    assert codes(t) == [102]
    t.command("SAFE:ICOM 1e-3")
    after = t.query_block("MEAS:COND?")
    np.testing.assert_allclose(after, before, atol=4 * 0.25e-6 / 8 * np.sqrt(2))


def test_jobs_too_big_for_one_command_are_refused() -> None:
    with (
        running_emulator("reram", seed=1, shape=(256, 256)) as resource,
        VisaTransport(resource) as t,
    ):
        t.write("PULS:APPL 1000000,1.2,1e-6")  # 6.6e10 device-pulses
        t.write("SEQ:PTR:DEF 100000,1.2,100000,-1.2,1e-6,1,1000;:SEQ:INIT")
        assert codes(t) == [-223, -223]
        assert t.query("SEQ:STAT?") == "IDLE"


# --------------------------------------------------------------------------- bench instruments
def test_the_bench_instruments_share_the_generic_rules() -> None:
    """The E5250A manual's own compound example, MIN/MAX/DEF on bench settings, and the
    status model on the SCPI and TSP instruments (one engine for all)."""
    from instruments.emulator.bench.bench import running_bench

    with running_bench("reram", seed=1, shape=(2, 2)) as res:
        with VisaTransport(res.switch) as sw:
            sw.command(":ROUT:CONN:RULE ALL,SROU;SEQ ALL,BBM")  # E5250A Guide 6-4
            assert sw.query(":ROUT:CONN:RULE? 1;SEQ? 1") == "SROU;BBM"
        with VisaTransport(res.smu) as smu:
            assert float(smu.query(":SOUR:VOLT? MAX")) == 210.0
            assert float(smu.query(":SENS:CURR:PROT? MIN")) == 1e-9
            smu.command(":SENS:CURR:PROT 1e-3;:SENS:CURR:PROT DEF")
            assert float(smu.query(":SENS:CURR:PROT?")) == 1e-4  # the *RST value
            smu.command(":SOUR:VOLT MAX;:SOUR:VOLT MIN")
            assert float(smu.query(":SOUR:VOLT?")) == -210.0
            assert smu.query("*ESR?") == "128" and smu.query("*TST?") == "0"
            smu.write(":SOUR:FUNC:MODE VOLT;:SOUR:VOLT 1e9")
            assert smu.query("*ESR?") == "16"
            smu.errors()
            # B2961A/B2962A SCPI ref. Ed. 6, 4-67: :OUTP:ON:AUTO (on by default) turns the
            # output on for :INIT and :READ
            smu.command(":SOUR:VOLT 0")
            assert smu.query(":OUTP?;:OUTP:ON:AUTO?") == "0;1"
            assert smu.query(":READ:ARR:CURR?") == "+0.000000E+00"
            assert smu.query(":OUTP?") == "1"
            smu.command(":OUTP OFF;:OUTP:ON:AUTO OFF")
            no_reply(smu, ":READ:ARR:CURR?")
            assert [e.split(",")[0] for e in smu.errors()] == ["-221"]
        tsp = pyvisa.ResourceManager("@py").open_resource(
            res.smu_tsp, read_termination="\n", write_termination="\r\n", timeout=2000
        )
        try:
            assert tsp.query("*ESR?") == "128"
            tsp.write("smua.source.levelv = 1e6")  # error 1103: a device-specific event
            assert tsp.query("*ESR?") == "8"
            tsp.write("*ESE 16;*SRE 32")  # the syntax error below is an execution error
            tsp.write("bogus(")
            assert tsp.query("*STB?") == str(4 + 32 + 64)
            tsp.write("*CLS")
            assert float(tsp.query("print(errorqueue.count)")) == 0
        finally:
            tsp.close()
