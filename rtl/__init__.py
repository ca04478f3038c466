"""Amaranth RTL of the edgevit_hw compute units (one ``wiring.Component`` per module).

Every unit is built from :class:`edgevit_hw.core.derive.HwParams` only; stream payload layouts live
in :mod:`rtl.layouts` and are shared with the Python packing code of the benches.
"""
