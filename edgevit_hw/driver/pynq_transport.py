"""The ``pynq`` transport: a board with the top, an AXI DMA and PYNQ (never run here: this
project has no board; the rtl transport exercises everything above this file).

The overlay (``bitfile`` with its ``.hwh``) holds the top (IP ``ip``, its ``s_axil`` at the
IP's address) and an AXI DMA (``dma``) whose MM2S stream feeds ``s_axis`` and whose S2MM
stream takes ``m_axis``; the top's ``m_axi`` reaches PS DRAM. Calls, as PYNQ documents them:
``pynq.Overlay(bitfile)`` (downloading the bitstream resets the PL), ``pynq.MMIO(phys_addr,
addr_range)`` ``.read`` / ``.write`` for the registers, ``pynq.allocate`` buffers (``flush``
before the device reads, ``invalidate`` before the host reads, ``device_address`` for the
device) for the DRAM image and the streams, ``dma.sendchannel`` / ``dma.recvchannel``
``.transfer(buffer)`` and ``.idle``. The DMA ends every MM2S transfer with TLAST, so a frame
is sent as one transfer per tlast-terminated run of beats; its buffer length register must
hold a whole frame (``C_SG_LENGTH_WIDTH`` of at least log2 of the pixels per frame + 1).
``pynq`` is imported only here, when this backend is chosen.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from edgevit_hw.core.derive import HwParams
from edgevit_hw.driver.errors import TransportError
from edgevit_hw.driver.transport import Transport
from edgevit_hw.program.streams import beat_bytes

POLL_S = 1e-4  # seconds between looks at the DMA while waiting


class PynqTransport(Transport):
    name = "pynq"

    def __init__(self, hw: HwParams, bitfile: str, ip: str = "evh_top_0",
                 dma: str = "axi_dma_0"):  # fmt: skip
        self.hw, self.bitfile, self.ip_name, self.dma_name = hw, bitfile, ip, dma
        self.pynq = None
        self.queue: deque = deque()  # MM2S buffers not yet handed to the DMA
        self.sending = None  # the buffer the DMA is reading
        self.recv = None

    def reset(self) -> None:
        try:
            import pynq
        except ImportError:
            raise TransportError("the pynq backend needs the pynq package on a board with"
                                 " PYNQ (pip install pynq)") from None  # fmt: skip
        self.pynq = pynq
        overlay = pynq.Overlay(self.bitfile)
        ip = overlay.ip_dict[self.ip_name]
        self.mmio = pynq.MMIO(ip["phys_addr"], ip["addr_range"])
        self.dma = getattr(overlay, self.dma_name)
        self.hz = self.hw.clock_mhz * 1e6
        a, bits = self.hw.arith, self.hw.streams.token_bits
        dtype = np.int8 if bits == 8 else np.int16
        self.out = pynq.allocate(shape=(a.tokens * a.embed_dim,), dtype=dtype)
        self._arm()

    def read(self, offset: int) -> int:
        return int(self.mmio.read(offset))

    def write(self, offset: int, value: int) -> None:
        self.mmio.write(offset, value & 0xFFFFFFFF)

    def load_dram(self, image: bytes) -> int:
        self.image = self.pynq.allocate(shape=(len(image),), dtype=np.uint8)
        self.image[:] = np.frombuffer(image, np.uint8)
        self.image.flush()
        return int(self.image.device_address)

    def send(self, beats: np.ndarray) -> None:
        ends = np.flatnonzero(beats[:, -1]) + 1
        if len(ends) == 0 or ends[-1] != len(beats):
            raise TransportError("a DMA ends every transfer with tlast: frames whose last"
                                 " beat has no tlast cannot be sent to a board")  # fmt: skip
        for run in np.split(beats, ends[:-1]):  # a frame's bytes in order: the DMA packs beats
            payload = np.frombuffer(beat_bytes(run), np.uint8)
            buf = self.pynq.allocate(shape=(len(payload),), dtype=np.uint8)
            buf[:] = payload
            buf.flush()
            self.queue.append(buf)
        self._pump()

    def _pump(self) -> None:
        """Hand the next queued buffer to MM2S when it is free (one transfer at a time)."""
        if self.sending is not None and not self.dma.sendchannel.idle:
            return
        if self.sending is not None:
            self.sending.freebuffer()
            self.sending = None
        if self.queue:
            self.sending = self.queue.popleft()
            self.dma.sendchannel.transfer(self.sending)

    def _arm(self) -> None:
        self.dma.recvchannel.transfer(self.out)
        self.recv = self.out

    def wait(self, cycles: int) -> int:
        t0 = time.perf_counter()
        limit = cycles / self.hz
        while True:
            self._pump()
            spent = time.perf_counter() - t0
            if self.tokens_waiting() or spent >= limit:
                return int(spent * self.hz)
            time.sleep(POLL_S)

    def tokens_waiting(self) -> bool:
        return self.recv is not None and self.dma.recvchannel.idle

    def take(self) -> tuple[np.ndarray, int | None]:
        self.out.invalidate()
        data = np.array(self.out, np.int64)
        self._arm()
        return data, None

    def close(self) -> None:
        for buf in (*self.queue, self.sending, self.recv, getattr(self, "image", None)):
            if buf is not None:
                buf.freebuffer()
        self.queue.clear()
        self.sending = self.recv = None
