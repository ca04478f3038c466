"""The C++ side of the contract test: tests/contract_driver.cpp over hls/include/evh_arith.h,
compiled with the C-simulation's compiler and flags (edgevit_hw.hls.csim), cached by content,
twice: with native types and with -DEVH_AP_TYPES (ap_int of exactly the derived widths, the
synthesis types)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from edgevit_hw.hls import csim

from edgevit_hw.core import arithmetic as A
from edgevit_hw.core.derive import ArithParams

# Derived widths the driver's templates take (the kernels' K::*_BITS, emitted the same way).
WIDTHS = ("act_bits", "logit_bits", "mult_bits", "softmax_sum_bits", "softmax_acc_bits",
          "gelu_in_bits", "gelu_out_bits", "gate_sum_bits", "ln_sum_bits", "ln_d_bits",
          "ln_var_bits", "ln_dr_bits", "ln_n_bits", "ln_acc_bits", "ln_prod_bits")  # fmt: skip

DRIVER = Path(__file__).with_name("contract_driver.cpp")


@dataclass(frozen=True)
class CppParams:
    """The driver's compile-time template parameters (see contract_driver.cpp)."""

    F: int
    O: int
    GF: int
    E: int
    K: int
    W: int
    DV: int
    D: int
    NF: int
    widths: tuple[tuple[str, int], ...]  # (NAME_BITS, derived width)

    @staticmethod
    def of(a: ArithParams, dv: int) -> CppParams:
        """The parameters of the width set ``a`` (softmax rows of ``dv`` value lanes)."""
        from edgevit_hw.hls.emit import table_bits

        widths = [(f.upper(), getattr(a, f)) for f in WIDTHS]
        widths.append(("GELU_TABLE_BITS", table_bits(A.gelu_table(a.gelu_frac_bits))))
        return CppParams(F=a.exp_frac_bits, O=a.exp_out_bits, GF=a.gelu_frac_bits, E=a.experts,
                         K=a.top_k, W=a.gate_weight_bits, DV=dv, D=a.embed_dim,
                         NF=a.ln_norm_frac_bits, widths=tuple(widths))  # fmt: skip

    def defines(self) -> list[str]:
        """The parameters and the contract's constants, from arithmetic (never retyped)."""
        contract = {
            "GELU_STEP_LOG2": A.GELU_STEP_LOG2,
            "GELU_LAST": A.GELU_TABLE_LEN,
            "RSQRT_U_BITS": A.RSQRT_U_BITS,
            "RSQRT_M_FRAC": A.RSQRT_M_FRAC,
            "RSQRT_M_BITS": A.RSQRT_M_BITS,
        }
        own = {k: v for k, v in vars(self).items() if k != "widths"}
        return [f"-DEVH_{k}={v}" for k, v in {**own, **dict(self.widths), **contract}.items()]


def _include_dir() -> Path:
    return Path(str(resources.files("edgevit_hw.hls") / "include"))


def build_driver(p: CppParams, ap: bool = False) -> Path:
    """Compile the driver for ``p`` once (key: driver, evh_arith.h and evh_types.h, compiler
    and flags); ``ap``: with -DEVH_AP_TYPES."""
    cmd = [csim.CXX, *csim.CXXFLAGS, *p.defines(), *(["-DEVH_AP_TYPES"] if ap else []),
           "-isystem", str(csim.ap_types_dir()), f"-I{_include_dir()}", str(DRIVER)]  # fmt: skip
    h = hashlib.sha256(" ".join(cmd).encode())
    h.update(DRIVER.read_bytes())
    for name in ("evh_arith.h", "evh_types.h"):
        h.update((_include_dir() / name).read_bytes())
    exe = csim.CACHE.resolve() / "contract" / f"driver-{h.hexdigest()[:20]}"
    if exe.exists():
        return exe
    exe.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=exe.parent, prefix=".driver.")
    os.close(fd)
    res = subprocess.run([*cmd, "-o", tmp], capture_output=True, text=True)
    if res.returncode != 0:
        os.unlink(tmp)
        raise RuntimeError(f"g++ failed on {DRIVER}:\n{res.stderr[-4000:]}")
    os.replace(tmp, exe)
    return exe


def run(exe: Path, p: CppParams, op: str, records: np.ndarray, out_width: int) -> np.ndarray:
    """``op`` on every row of ``records`` (int64 [n, in_width], or 1-D for variable-length
    records); returns int64 [n_out, out_width] results in record order."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        np.ascontiguousarray(records, "<i8").tofile(d / "in.bin")
        A.exp2_table(p.F, p.O).astype("<i8").tofile(d / "exp2.bin")
        A.gelu_table(p.GF).astype("<i8").tofile(d / "gelu.bin")
        args = [str(exe), op, str(d / "in.bin"), str(d / "out.bin"), str(d / "exp2.bin"),
                str(d / "gelu.bin")]  # fmt: skip
        res = subprocess.run(args, capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f"contract driver {op} failed: {res.stderr[-2000:]}")
        return np.fromfile(d / "out.bin", "<i8").astype(np.int64).reshape(-1, out_width)
