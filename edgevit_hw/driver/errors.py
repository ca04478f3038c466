"""Typed driver errors, each with a one-line message (the command line prints it and exits 2)."""

from __future__ import annotations

from edgevit_hw.core.errors import EdgeVitError


class DriverError(EdgeVitError):
    """Base of the errors a backend reports for a frame or for the device."""


class MalformedFrame(DriverError):
    """A frame with too few or too many pixel beats: the device dropped it."""


class BadTask(DriverError):
    """A task id or name the spec does not have."""


class SpecHashMismatch(DriverError):
    """The device was built from another spec than the artifacts."""


class AxiReadError(DriverError):
    """A DRAM read came back with an error response: the frame was dropped."""


class DeviceTimeout(DriverError):
    """The device did not finish in time; the message carries its status."""


class TransportError(DriverError):
    """The link to the device failed (the simulation process ended, a board call failed)."""
