"""Drivers of real bench instruments: SMUs, a pulse generator and a switch matrix.

Each driver speaks its instrument's own command set through any message transport
(:class:`~instruments.visa_transport.VisaTransport` on a real or virtual instrument, or a
fake in protocol tests). See :mod:`instruments.drivers.base` for the conventions.
"""

from instruments.drivers.base import (
    Instrument,
    Parameter,
    SafeLimits,
    SafeOperatingAreaError,
    ScpiInstrument,
    SettingError,
)
from instruments.drivers.keithley_2600 import Keithley2600
from instruments.drivers.keysight_33500 import Keysight33500B
from instruments.drivers.keysight_b2900 import KeysightB2900
from instruments.drivers.keysight_e5250 import KeysightE5250A

#: driver names used in bench description files
DRIVERS = {
    "keysight_b2900": KeysightB2900,
    "keithley_2600": Keithley2600,
    "keysight_33500": Keysight33500B,
    "keysight_e5250": KeysightE5250A,
}

__all__ = [
    "DRIVERS",
    "Instrument",
    "Keithley2600",
    "Keysight33500B",
    "KeysightB2900",
    "KeysightE5250A",
    "Parameter",
    "SafeLimits",
    "SafeOperatingAreaError",
    "ScpiInstrument",
    "SettingError",
]
