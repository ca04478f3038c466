"""cocotb benches of the rtl/ units and their shared harness (run through sim.runner)."""
