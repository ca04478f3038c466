"""Vivado block-design script of the accelerator on its board: a pure emitter.

:func:`emit_bd_tcl` returns ``{"<board>_bd.tcl": text}`` for the spec's ``hardware.board``
(``{}`` for a board without a :data:`BOARDS` entry); the flow writes it into ``DIR/rtl`` beside
``evh_top.v``. The script builds a project for ``hardware.part``, a block design with the
Zynq UltraScale+ PS (board preset), ``evh_top.v`` as an RTL module reference, an AXI DMA in
simple mode on the two streams, the top's AXI4 read master on an HP port, its AXI4-Lite
registers and the DMA's on the PS's HPM0 port through a SmartConnect, one PL clock at
``hardware.clock_mhz`` with its ``proc_sys_reset``, the interrupts on ``pl_ps_irq0``; then
validates, wraps, synthesizes, implements and writes the bitstream with the ``.hwh`` a PYNQ
overlay loads.

Every width in the script comes from :class:`HwParams` (``streams``) and the board's row of
:data:`BOARDS`; the logic-free template ``templates/bd.tcl.j2`` only places them. Vivado is not
installed where this is developed: the script is checked for consistency with ``evh_top.v``
(every port it connects exists there, with the widths it configures), never run.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgevit_hw.rtl.export import top_name

from edgevit_hw.core.derive import HwParams, ubits
from edgevit_hw.core.errors import SpecError

TOP = top_name("top")  # the top's module and file name
TEMPLATE = "bd.tcl.j2"


@dataclass(frozen=True)
class HpPort:
    """A PS slave port a PL master reaches DDR through: its interface pin, clock pin and the
    PS configuration keys that enable it and set its data width."""

    pin: str
    aclk: str
    use_key: str
    width_key: str


@dataclass(frozen=True)
class Board:
    """One board: its part and board files, PS IP and ports, and the device's capacity."""

    title: str
    part: str
    board_part: str  # glob over get_board_parts (the newest installed version is taken)
    ps_vlnv: str
    ps_rule: str  # apply_bd_automation rule that applies the board preset
    accel_port: HpPort  # the top's m_axi
    dma_port: HpPort  # the DMA's MM2S and S2MM masters
    ctrl_port: str  # PS master for the AXI4-Lite registers
    ctrl_aclk: str
    ctrl_keys: tuple[tuple[str, str], ...]  # PS settings of that master
    off_keys: tuple[str, ...]  # PS masters the preset enables that stay unused (unclocked)
    hp_max_bits: int  # widest PS slave port
    capacity: tuple[tuple[str, int], ...]  # resources of the part, as Yosys counts them


HP_KEYS = ("PSU__USE__S_AXI_GP{n}", "PSU__SAXIGP{n}__DATA_WIDTH")


def _hp(index: int) -> HpPort:
    """S_AXI_HP<index>_FPD: the PS configuration calls it S_AXI_GP<index + 2>."""
    use, width = (k.format(n=index + 2) for k in HP_KEYS)
    return HpPort(f"S_AXI_HP{index}_FPD", f"saxihp{index}_fpd_aclk", use, width)


BOARDS = {
    "zcu102": Board(
        title="ZCU102 (Zynq UltraScale+ XCZU9EG)",
        part="xczu9eg-ffvb1156-2-e",
        board_part="xilinx.com:zcu102:part0:*",
        ps_vlnv="xilinx.com:ip:zynq_ultra_ps_e",
        ps_rule="xilinx.com:bd_rule:zynq_ultra_ps_e",
        accel_port=_hp(0),
        dma_port=_hp(1),
        ctrl_port="M_AXI_HPM0_FPD",
        ctrl_aclk="maxihpm0_fpd_aclk",
        ctrl_keys=(("PSU__USE__M_AXI_GP0", "1"), ("PSU__MAXIGP0__DATA_WIDTH", "32")),
        off_keys=("PSU__USE__M_AXI_GP1", "PSU__USE__M_AXI_GP2"),
        hp_max_bits=128,
        capacity=(("LUT", 274_080), ("FF", 548_160), ("DSP48E2", 2_520), ("BRAM36", 912)),
    ),
}

# The IP cores of the design (VLNV without version: Vivado takes the catalog's version).
IP = {
    "dma": "xilinx.com:ip:axi_dma",
    "smartconnect": "xilinx.com:ip:smartconnect",
    "reset": "xilinx.com:ip:proc_sys_reset",
    "concat": "xilinx.com:ip:xlconcat",
}
# The top's ports the script connects (tests check each against evh_top.v).
TOP_CLOCK, TOP_RESET, TOP_IRQ = "aclk", "aresetn", "interrupt"
TOP_BUSES = {"accel": "m_axi", "ctrl": "s_axil", "pixels": "s_axis", "tokens": "m_axis"}
# AXI DMA (PG021) limits: stream and memory-map widths, buffer length register width.
DMA_MM_MIN_BITS = 32
DMA_LENGTH_BITS = (14, 26)  # (the IP's default, its maximum); 14 bits = 16 KB transfers


def frame_bytes(hw: HwParams) -> tuple[int, int]:
    """Bytes of one frame on ``s_axis`` and of its output tokens on ``m_axis``."""
    a, s = hw.arith, hw.streams
    return a.patches * a.patch_dim * s.pixel_bits // 8, a.tokens * a.embed_dim * s.token_bits // 8


def dma_context(hw: HwParams) -> dict:
    """Widths of the AXI DMA: streams as the top's, memory side at least 32 bits, and a
    length register wide enough for a whole frame in one simple-mode transfer."""
    s = hw.streams
    low, high = DMA_LENGTH_BITS
    need = ubits(max(frame_bytes(hw)))
    if need > high:
        raise SpecError(f"a frame of {max(frame_bytes(hw))} bytes exceeds the AXI DMA's "
                         f"{high}-bit length register")  # fmt: skip
    return {
        "mm2s_tdata_bits": s.s_axis_bits,
        "s2mm_tdata_bits": s.m_axis_bits,
        "mm_bits": max(DMA_MM_MIN_BITS, s.s_axis_bits, s.m_axis_bits),
        "length_bits": max(low, need),
    }


def bd_context(hw: HwParams, board: Board) -> dict:
    """The template's whole context (no value is computed in the template)."""
    from edgevit_hw.core.spec import generated_line

    in_bytes, out_bytes = frame_bytes(hw)
    return {
        "header": generated_line(hw.spec_name, hw.spec_hash, "#")[2:],
        "spec_name": hw.spec_name,
        "script": bd_tcl_name(hw),
        "board": board,
        "part": hw.part,
        "clock_mhz": f"{hw.clock_mhz:g}",
        "port_bits": hw.streams.port_bits,
        "accel_hp_bits": min(hw.streams.port_bits, board.hp_max_bits),
        "top": top_context(),
        "ip": IP,
        "dma": dma_context(hw),
        "frame_in_bytes": in_bytes,
        "frame_out_bytes": out_bytes,
    }


def top_context() -> dict[str, str]:
    """The top's module, file, block-design cell, clock, reset, interrupt and bus prefixes."""
    names = {"module": TOP, "file": f"{TOP}.v", "cell": f"{TOP}_0", "clock": TOP_CLOCK}
    return {**names, "reset": TOP_RESET, "irq": TOP_IRQ, **TOP_BUSES}


def render(ctx: dict) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("edgevit_hw.rtl", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    return env.get_template(TEMPLATE).render(**ctx)


def bd_tcl_name(hw: HwParams) -> str:
    return f"{hw.board}_bd.tcl"


def emit_bd_tcl(hw: HwParams) -> dict[str, str]:
    """``{"<board>_bd.tcl": script}``, or ``{}`` when :data:`BOARDS` does not know the board
    or the spec's part is not the board's."""
    board = BOARDS.get(hw.board)
    if board is None or board.part != hw.part:
        return {}
    return {bd_tcl_name(hw): render(bd_context(hw, board))}
