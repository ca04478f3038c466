"""The data section of the DRAM image: weights, biases and constants as the hardware reads them.

A sequence of segments, each starting on a beat boundary (``port_bits`` per beat,
little-endian). Weight segments hold an [O, K] matrix pre-tiled for the MAC array: column slab
j (outputs ``j*C .. j*C + C-1``, zero past O) is ``K`` rows, row k being the C weights
``w[j*C + c][k]`` in ``slab_row_beats`` beats of ``weights_per_beat`` two's-complement lanes of
``weight_bits`` (lane l = bits [l*wb, (l+1)*wb), zero-padded past C); slab j starts at beat
``j * K * slab_row_beats``. A slab is one plain burst into the array's weight tile. Word
segments hold 32-bit lanes; a 64-bit value takes two words (low, high); a requantization
constant is one word ``m | s << 24``. :class:`ImageReader` decodes the same formats.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgevit_hw.core.derive import HwParams

RQ_SHIFT = 24  # a requantization word is m | s << RQ_SHIFT (m < 2^24, s < 256)


@dataclass
class DataImage:
    """Segments appended in order; every method returns the segment's first beat."""

    hw: HwParams
    chunks: list[bytes] = field(default_factory=list)
    beats: int = 0

    @property
    def beat_bytes(self) -> int:
        return self.hw.streams.beat_bytes

    def _add(self, data: bytes) -> int:
        pad = -len(data) % self.beat_bytes
        first = self.beats
        self.chunks.append(data + bytes(pad))
        self.beats += (len(data) + pad) // self.beat_bytes
        return first

    def weights(self, w: np.ndarray) -> int:
        """[O, K] signed weights, pre-tiled in C-column slabs (see the module docstring)."""
        wb, per = self.hw.arith.weight_bits, self.hw.streams.weights_per_beat
        c, row = self.hw.mac_cols, self.hw.streams.slab_row_beats * per
        o, k = np.shape(w)
        slabs = -(-o // c)
        tiles = np.zeros((slabs * c, k), np.int64)
        tiles[:o] = w
        rows = np.zeros((slabs, k, row), np.int64)
        rows[..., :c] = tiles.reshape(slabs, c, k).transpose(0, 2, 1)
        lanes = (rows.reshape(-1) & ((1 << wb) - 1)).astype(np.uint64).reshape(-1, per)
        bits = (lanes[..., None] >> np.arange(wb, dtype=np.uint64)) & np.uint64(1)
        bits = bits.reshape(len(lanes), per * wb).astype(np.uint8)
        bits = np.pad(bits, ((0, 0), (0, self.hw.streams.port_bits - per * wb)))
        return self._add(np.packbits(bits, axis=1, bitorder="little").tobytes())

    def words32(self, v) -> int:
        arr = np.asarray(v, np.int64).reshape(-1)
        assert np.all(arr >= -(1 << 31)) and np.all(arr < (1 << 32))
        return self._add((arr & 0xFFFFFFFF).astype("<u4").tobytes())

    def words64(self, v) -> int:
        return self._add(np.asarray(v, np.int64).reshape(-1).astype("<i8").tobytes())

    def bias(self, v) -> int:
        """Biases as 32- or 64-bit words (``streams.bias_word_bits``)."""
        return self.words64(v) if self.hw.streams.bias_word_bits == 64 else self.words32(v)

    def requant(self, m, s) -> int:
        m, s = np.asarray(m, np.int64).reshape(-1), np.asarray(s, np.int64).reshape(-1)
        assert np.all(m < (1 << RQ_SHIFT)) and np.all((s >= 0) & (s < 256))
        return self.words32(m | (s << RQ_SHIFT))

    def blob(self) -> bytes:
        return b"".join(self.chunks)


class ImageReader:
    """Reads segments back from a whole DRAM image (beat addresses from the DRAM base)."""

    def __init__(self, image: bytes, hw: HwParams):
        self.data = np.frombuffer(image, np.uint8)
        self.hw = hw
        self.beat_bytes = hw.streams.beat_bytes

    def _bytes(self, beat: int, n: int) -> np.ndarray:
        start = beat * self.beat_bytes
        if beat < 0 or start + n > len(self.data):
            raise ValueError(f"segment at beat {beat} ({n} bytes) lies outside the image")
        return self.data[start : start + n]

    def weights(self, beat: int, out: int, k: int) -> np.ndarray:
        """The [out, k] matrix of a pre-tiled weight segment."""
        wb, per = self.hw.arith.weight_bits, self.hw.streams.weights_per_beat
        c, rb = self.hw.mac_cols, self.hw.streams.slab_row_beats
        slabs = -(-out // c)
        nbeats = slabs * k * rb
        raw = self._bytes(beat, nbeats * self.beat_bytes).reshape(nbeats, self.beat_bytes)
        bits = np.unpackbits(raw, axis=1, bitorder="little")[:, : per * wb]
        lanes = bits.reshape(-1, wb).astype(np.int64) @ (np.int64(1) << np.arange(wb))
        lanes = np.where(lanes >= 1 << (wb - 1), lanes - (1 << wb), lanes)
        rows = lanes.reshape(slabs, k, rb * per)[..., :c]
        return rows.transpose(0, 2, 1).reshape(slabs * c, k)[:out]

    def words32(self, beat: int, n: int, signed: bool = True) -> np.ndarray:
        raw = self._bytes(beat, 4 * n).view("<i4" if signed else "<u4")
        return raw.astype(np.int64)

    def words64(self, beat: int, n: int) -> np.ndarray:
        return self._bytes(beat, 8 * n).view("<i8").astype(np.int64)

    def bias(self, beat: int, n: int) -> np.ndarray:
        wide = self.hw.streams.bias_word_bits == 64
        return self.words64(beat, n) if wide else self.words32(beat, n)

    def requant(self, beat: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        w = self.words32(beat, n, signed=False)
        return w & ((1 << RQ_SHIFT) - 1), w >> RQ_SHIFT
