"""derive: widths proven from bounds, JSON serializable, on-chip budget."""

import json
import subprocess

import pytest
from conftest import prepared
from edgevit_hw.hls import csim
from edgevit_hw.hls.emit import kernel_sources, render_sources

from edgevit_hw.core import arithmetic as A
from edgevit_hw.core.derive import derive, derive_arith, hw_from_dict
from edgevit_hw.core.spec import load_spec, spec_variant


def test_accumulators_hold_their_extremes():
    for name in ("micro_moe", "m3vit", "deit_tiny"):
        ap = derive_arith(load_spec(name))
        for lin in ap.linears.all():
            x = -(1 << (lin.x_bits - 1))
            w = -(1 << (ap.weight_bits - 1))
            extreme = lin.k * x * w + lin.bias_max
            assert A.smin(lin.acc_bits) <= -extreme and extreme <= A.smax(lin.acc_bits)
            assert extreme > A.smax(lin.acc_bits - 1)  # and the width is tight
            assert lin.prod_bits <= 63


def test_widths_follow_the_quant_section():
    base = derive_arith(load_spec("micro_moe"))
    wide = derive_arith(spec_variant("micro_moe", quant={"act_bits": 12, "weight_bits": 10}))
    assert wide.linears.fc1.acc_bits == base.linears.fc1.acc_bits + 6
    assert wide.score_bits == base.score_bits + 8


def test_json_round_trip_and_budget():
    hw = derive(load_spec("m3vit"))
    data = json.loads(hw.to_json())
    assert data["arith"]["tokens"] == 129 and data["mac_rows"] == 16
    assert data["onchip_bytes"] == hw.onchip_bytes < 1 << 20  # well under 1 MB on chip
    assert data["hash32"] == int(hw.spec_hash[:8], 16)
    assert hw_from_dict(data) == hw  # every record rebuilt from JSON


BUFFER_DUMP = """
#include <cstdio>
#include <type_traits>
#include "evh_params.h"
#define TYPE_ROW(m, A) { typedef std::remove_all_extents<A>::type T; \\
    std::printf(#m " %zu %d %d\\n", sizeof(A) / sizeof(T), int(T::width), \\
                int(std::is_signed<decltype(T().to_int64())>::value && T(-1) < T(0))); }
#define ROW(m) TYPE_ROW(m, decltype(EvhCfg::Act::m))
#define OWN_ROW(m) TYPE_ROW(m, EvhCfg::Act::m##_t)
int main() { %s return 0; }
"""


@pytest.mark.csim
@pytest.mark.parametrize("name", ["micro_moe", "odd_moe", "m3vit"])
def test_hls_allocates_exactly_the_derived_buffers(name, tmp_path):
    """The HLS project's buffer struct, compiled with the synthesis types (ap_int of exactly
    the derived width), holds every buffer of derive with its words, bits and sign: as a
    member, or as the type the one dataflow process that owns it declares (emit.PROCESS_BUFFERS,
    e.g. the MAC array's weight double buffer)."""
    from edgevit_hw.hls.emit import PROCESS_BUFFERS

    prep = prepared(name)
    hw = prep.hw
    for rel, text in render_sources(prep.program).items():
        (tmp_path / rel).write_text(text)
    for rel, data in kernel_sources().items():
        (tmp_path / rel).write_bytes(data)
    rows = "".join(f"{'OWN_ROW' if b.name in PROCESS_BUFFERS else 'ROW'}({b.name})"
                   for b in hw.buffers.all())  # fmt: skip
    (tmp_path / "dump.cpp").write_text(BUFFER_DUMP.replace("%s", rows))
    exe = tmp_path / "dump"
    cmd = [csim.CXX, *csim.CXXFLAGS, "-DEVH_AP_TYPES", "-isystem", str(csim.ap_types_dir()),
           f"-I{tmp_path}", str(tmp_path / "dump.cpp"), "-o", str(exe)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    got = [(out[i], int(out[i + 1]), int(out[i + 2]), bool(int(out[i + 3])))
           for i in range(0, len(out), 4)]  # fmt: skip
    want = [(b.name, b.words, b.bits, b.signed) for b in hw.buffers.all()]
    assert got == want
    assert sum(w * ((bits + 7) // 8) for _, w, bits, _ in got) == hw.onchip_bytes


def test_rtl_queue_memory_is_the_derived_buffer():
    """The expert-queue unit's memory: depth and entry width of derive's queue buffers."""
    from amaranth.hdl import Fragment
    from edgevit_hw.rtl.expert_queues import ExpertQueueBuilder

    hw = prepared("micro_moe").hw
    dut = ExpertQueueBuilder(hw)
    module = dut.elaborate(None)
    Fragment.get(module, None)  # elaborated whole, so nothing is left unused
    dut._MustUse__silence = True  # the unit itself is only taken apart here
    mem = module._named_submodules["mem"][0]
    b = hw.buffers
    assert mem.depth == b.queue_tokens.words == b.queue_slots.words
    assert mem.shape.size == b.queue_tokens.bits + b.queue_slots.bits


@pytest.mark.parametrize("name", ["micro_moe", "digits_moe", "m3vit", "deit_tiny"])
def test_stream_beats_pack_whole_lane_groups(name):
    """A beat's elements divide a patch (a token) and an activation word, fill at most 64 bits,
    and no wider beat would."""
    hw = derive(load_spec(name))
    a, s = hw.arith, hw.streams
    for per, bits, length in ((s.pixels_per_beat, s.pixel_bits, a.patch_dim),
                              (s.tokens_per_beat, s.token_bits, a.embed_dim)):  # fmt: skip
        assert length % per == 0 and s.act_lanes % per == 0 and per * bits <= 64
        wider = 2 * per
        assert length % wider or s.act_lanes % wider or wider * bits > 64
    assert s.s_axis_bits == s.pixels_per_beat * s.pixel_bits
    assert s.m_axis_bits == s.tokens_per_beat * s.token_bits
