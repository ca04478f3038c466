// The models around the accelerator top (evh_top) shared by both front ends of the Verilator
// bench (fullframe.cpp): the JOB runner (whole frames from a job file) and the transport server
// (serve.h, driven by the host driver one transaction at a time). No Python per cycle.
//
// TopBench models, cycle by cycle:
//  - DRAM: a behavioral AXI4 read slave holding an image at byte address `base`. ARREADY is
//    high while fewer than `outstanding` bursts are queued; a burst (INCR, ARLEN+1 beats of
//    `port_bytes`) answers its first beat `latency` cycles after its AR handshake, then one
//    beat per cycle, bursts in order, RRESP OKAY (SLVERR for a beat whose address was marked
//    with `fault`), RLAST on the last beat;
//  - an AXI4-Lite master (one register access at a time: AW and W together, then B; AR, then R),
//    fed from a queue of accesses;
//  - a pixel source on s_axis: frames of beats queued in order, each beat `pixels_per_beat`
//    pixel bytes (lane j in TDATA bits 8j..8j+7) and a tlast byte; TVALID high while a frame
//    has beats left (a frame's first beat waits for `may_start(frame)`);
//  - a token sink on m_axis, always ready: `tokens_per_beat` elements per beat (lane j in bits
//    token_bits*j ..), each sign-extended from `token_bits`, split into token frames at TLAST.
// Subclasses react to events through the virtual hooks. A cycle is numbered by the rising edge
// that ends it (the first edge of the run is cycle 1).

#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"
#ifdef EVH_FST
#include "verilated_fst_c.h"
#endif

namespace evh {

struct HangError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------- port helpers ----
template <typename T>
void put_bytes(T& sig, const uint8_t* p, size_t n) {
    uint64_t v = 0;
    std::memcpy(&v, p, std::min<size_t>(n, 8));
    sig = static_cast<T>(v);
}

template <std::size_t W>
void put_bytes(VlWide<W>& sig, const uint8_t* p, size_t n) {
    for (std::size_t i = 0; i < W; ++i) {
        uint32_t w = 0;
        if (4 * i < n) std::memcpy(&w, p + 4 * i, std::min<size_t>(4, n - 4 * i));
        sig[i] = w;
    }
}

template <typename T>
void put_zero(T& sig) {
    sig = 0;
}

template <std::size_t W>
void put_zero(VlWide<W>& sig) {
    for (std::size_t i = 0; i < W; ++i) sig[i] = 0;
}

// The handshakes and payloads the coming rising edge sees.
struct Sampled {
    bool ar, r, px, tok, aw, w, b, lar, lr;
    uint64_t araddr;
    uint32_t arlen, arsize, arburst, lrdata;
    uint64_t tdata;
    bool tlast;
};

struct LiteOp {
    bool write;
    std::string reg;  // its name, for messages
    uint32_t offset, data;
    int tag;      // what a read's value is for (the subclass's)
    int64_t arg;  // e.g. the frame index
};

struct DramConfig {
    uint64_t base = 0x10000, latency = 40, outstanding = 64, port_bytes = 16;
};

// The two AXI4-Stream ports' beats (derive's Streams; TDATA at most 64 bits).
struct StreamConfig {
    uint64_t pixels_per_beat = 1, token_bits = 8, tokens_per_beat = 1;
};

class TopBench {
  public:
    TopBench(VerilatedContext* ctx, DramConfig dram, StreamConfig streams)
        : top_(new Vtop(ctx, "TOP")), dram_(dram), streams_(streams) {}
    TopBench(const TopBench&) = delete;
    TopBench& operator=(const TopBench&) = delete;

    virtual ~TopBench() {
#ifdef EVH_FST
        if (tfp_) tfp_->close();
        delete tfp_;
#endif
        top_->final();
        delete top_;
    }

    // Reset: `low` cycles with aresetn low and every input idle, then `high` cycles released.
    void reset(int low = 8, int high = 2) {
        top_->aresetn = 0;
        drive();
        for (int i = 0; i < low; ++i) step();
        top_->aresetn = 1;
        for (int i = 0; i < high; ++i) step();
        last_progress_ = cyc_;
    }

    void set_image(std::vector<uint8_t> image) { image_ = std::move(image); }
    // Answer SLVERR for the beat holding byte `addr` (a fault injection; clear_faults ends it).
    void fault(uint64_t addr) { faults_.insert(addr - addr % dram_.port_bytes); }
    void clear_faults() { faults_.clear(); }
    void set_dram(const DramConfig& d) { dram_ = d; }
    // Bytes of one queued pixel beat: its pixels, then tlast.
    uint64_t beat_size() const { return streams_.pixels_per_beat + 1; }
    // A frame of `n` beats (beat_size() bytes each), queued behind the others.
    void queue_frame(const uint8_t* beats, uint64_t n) {
        frames_.push_back({beats_.size() / beat_size(), n});
        beats_.insert(beats_.end(), beats, beats + beat_size() * n);
        first_pixel_.push_back(0);
        last_pixel_.push_back(0);
    }
    void lite_issue(LiteOp op) { lite_q_.push_back(std::move(op)); }

    // One clock cycle: settle the inputs driven for it, sample every handshake the edge will
    // see, take the edge, update the models, drive the next cycle's inputs.
    void step() {
        eval_low();
        Sampled s{};
        s.ar = top_->m_axi_arvalid && top_->m_axi_arready;
        s.r = top_->m_axi_rvalid && top_->m_axi_rready;
        s.px = top_->s_axis_tvalid && top_->s_axis_tready;
        s.tok = top_->m_axis_tvalid && top_->m_axis_tready;
        s.aw = top_->s_axil_awvalid && top_->s_axil_awready;
        s.w = top_->s_axil_wvalid && top_->s_axil_wready;
        s.b = top_->s_axil_bvalid && top_->s_axil_bready;
        s.lar = top_->s_axil_arvalid && top_->s_axil_arready;
        s.lr = top_->s_axil_rvalid && top_->s_axil_rready;
        s.araddr = top_->m_axi_araddr;
        s.arlen = top_->m_axi_arlen;
        s.arsize = top_->m_axi_arsize;
        s.arburst = top_->m_axi_arburst;
        s.tdata = static_cast<uint64_t>(top_->m_axis_tdata);
        s.tlast = top_->m_axis_tlast;
        s.lrdata = top_->s_axil_rdata;
        posedge();
        after_edge(s);
        drive();
    }

    uint64_t cycle() const { return cyc_; }

  protected:
    struct Burst {
        uint64_t addr, beats, due;
    };
    enum class Lite { Idle, Write, WriteResp, ReadAddr, ReadData };
    struct PixelFrame {
        uint64_t offset, nbeats;  // in beats
    };

    // Hooks.
    virtual bool may_start(size_t /*frame*/) { return true; }
    virtual void on_first_pixel(size_t /*frame*/) {}
    virtual void on_token_frame(size_t /*frame*/, uint64_t /*cycle*/, uint64_t /*elements*/) {}
    virtual void on_lite_write(const LiteOp& /*op*/) {}
    virtual void on_lite_read(const LiteOp& /*op*/, uint32_t /*value*/) {}
    virtual void on_pc(uint64_t /*cycle*/, uint32_t /*pc*/) {}

    void eval_low() {
        top_->aclk = 0;
        top_->eval();
#ifdef EVH_FST
        if (tfp_ && cyc_ >= waves_from_ && cyc_ <= waves_to_) tfp_->dump(10 * cyc_ + 5);
#endif
    }

    void posedge() {
        top_->aclk = 1;
        top_->eval();
        ++cyc_;
#ifdef EVH_FST
        if (tfp_ && cyc_ >= waves_from_ && cyc_ <= waves_to_) tfp_->dump(10 * cyc_);
#endif
    }

    void after_edge(const Sampled& s) {
        const uint64_t now = cyc_;
        if (s.ar) dram_request(s, now);
        if (s.r) dram_beat(now);
        if (s.px) pixel(now);
        if (s.tok) token(now, s.tdata, s.tlast);
        lite_edge(s, now);
        uint32_t pc = top_->dbg_pc;
        if (pc != pc_) {
            last_progress_ = now;
            on_pc(now, pc);
            pc_ = pc;
        }
    }

    void drive() {
        // DRAM read slave
        top_->m_axi_arready = bursts_.size() < dram_.outstanding;
        const uint64_t next = cyc_ + 1;
        if (!bursts_.empty() && bursts_.front().due <= next) {
            const Burst& b = bursts_.front();
            uint64_t addr = b.addr + beat_ * dram_.port_bytes;
            top_->m_axi_rvalid = 1;
            top_->m_axi_rlast = beat_ + 1 == b.beats;
            top_->m_axi_rresp = faults_.count(addr) ? 2 : 0;
            top_->m_axi_rid = 0;
            if (in_image(addr))
                put_bytes(top_->m_axi_rdata, &image_[addr - dram_.base], dram_.port_bytes);
            else put_zero(top_->m_axi_rdata);
        } else {
            top_->m_axi_rvalid = 0;
            top_->m_axi_rlast = 0;
        }
        // pixels
        bool have = src_frame_ < frames_.size() && (src_beat_ > 0 || may_start(src_frame_));
        top_->s_axis_tvalid = have;
        if (have) {
            const uint8_t* beat = &beats_[(frames_[src_frame_].offset + src_beat_) * beat_size()];
            uint64_t data = 0;
            for (uint64_t j = 0; j < streams_.pixels_per_beat; ++j) data |= uint64_t(beat[j]) << (8 * j);
            top_->s_axis_tdata = data;
            top_->s_axis_tlast = beat[streams_.pixels_per_beat];
        } else {
            top_->s_axis_tlast = 0;
        }
        top_->m_axis_tready = 1;
        // AXI-Lite
        const LiteOp* op = lite_q_.empty() ? nullptr : &lite_q_.front();
        uint32_t off = op ? op->offset : 0;
        top_->s_axil_awvalid = lite_ == Lite::Write && !aw_done_;
        top_->s_axil_wvalid = lite_ == Lite::Write && !w_done_;
        top_->s_axil_awaddr = off;
        top_->s_axil_awprot = 0;
        top_->s_axil_wdata = op ? op->data : 0;
        top_->s_axil_wstrb = 0xF;
        top_->s_axil_bready = lite_ == Lite::WriteResp;
        top_->s_axil_arvalid = lite_ == Lite::ReadAddr;
        top_->s_axil_araddr = off;
        top_->s_axil_arprot = 0;
        top_->s_axil_rready = lite_ == Lite::ReadData;
    }

    bool in_image(uint64_t addr) const {
        return addr >= dram_.base && addr - dram_.base + dram_.port_bytes <= image_.size();
    }

    Vtop* top_;
#ifdef EVH_FST
    VerilatedFstC* tfp_ = nullptr;
    uint64_t waves_from_ = 0, waves_to_ = UINT64_MAX;
#endif
    DramConfig dram_;
    StreamConfig streams_;
    std::vector<uint8_t> image_;
    std::set<uint64_t> faults_;
    uint64_t cyc_ = 0;
    uint64_t last_progress_ = 0;

    std::deque<Burst> bursts_;
    std::vector<int64_t> ar_log_;  // per accepted burst: cycle, first beat in the image, beats
    uint64_t beat_ = 0;
    uint64_t dram_beats_ = 0, oob_beats_ = 0;

    std::deque<LiteOp> lite_q_;
    Lite lite_ = Lite::Idle;
    bool aw_done_ = false, w_done_ = false;
    uint64_t lite_since_ = 0;

    std::vector<uint8_t> beats_;
    std::vector<PixelFrame> frames_;
    std::vector<uint64_t> first_pixel_, last_pixel_;  // per queued frame (0: not yet)
    size_t src_frame_ = 0;
    uint64_t src_beat_ = 0;

    std::vector<int32_t> tokens_;  // every element received, in order
    size_t tok_frame_ = 0;         // token frames completed (TLAST seen)
    uint64_t tok_in_frame_ = 0;
    uint32_t pc_ = 0;

  private:
    void dram_request(const Sampled& s, uint64_t now) {
        if (s.arburst != 1) throw std::runtime_error("ARBURST is not INCR");
        if ((1ull << s.arsize) != dram_.port_bytes)
            throw std::runtime_error("ARSIZE " + std::to_string(s.arsize) +
                                     " is not the port width");
        uint64_t beats = s.arlen + 1ull;
        if ((s.araddr & 4095) + beats * dram_.port_bytes > 4096)
            throw std::runtime_error("a burst crosses a 4 KB boundary");
        bursts_.push_back({s.araddr, beats, now + dram_.latency});
        for (int64_t v : {int64_t(now), int64_t(s.araddr - dram_.base) / int64_t(dram_.port_bytes),
                          int64_t(beats)})
            ar_log_.push_back(v);
    }

    void dram_beat(uint64_t now) {
        ++dram_beats_;
        if (!in_image(bursts_.front().addr + beat_ * dram_.port_bytes)) ++oob_beats_;
        last_progress_ = now;
        if (++beat_ == bursts_.front().beats) {
            bursts_.pop_front();
            beat_ = 0;
        }
    }

    void pixel(uint64_t now) {
        last_progress_ = now;
        if (src_beat_ == 0) {
            first_pixel_[src_frame_] = now;
            on_first_pixel(src_frame_);
        }
        if (++src_beat_ == frames_[src_frame_].nbeats) {
            last_pixel_[src_frame_] = now;
            ++src_frame_;
            src_beat_ = 0;
        }
    }

    void token(uint64_t now, uint64_t raw, bool last) {
        last_progress_ = now;
        const uint64_t bits = streams_.token_bits;
        for (uint64_t j = 0; j < streams_.tokens_per_beat; ++j) {
            int64_t v = int64_t((raw >> (bits * j)) & ((1ull << bits) - 1));
            if (v >> (bits - 1)) v -= int64_t(1) << bits;
            tokens_.push_back(int32_t(v));
        }
        tok_in_frame_ += streams_.tokens_per_beat;
        if (last) {
            on_token_frame(tok_frame_, now, tok_in_frame_);
            ++tok_frame_;
            tok_in_frame_ = 0;
        }
    }

    // The access at the head of the queue completed: the next one may start.
    void lite_finish(bool read, uint32_t value) {
        const LiteOp op = lite_q_.front();
        lite_q_.pop_front();
        lite_ = Lite::Idle;
        if (read) on_lite_read(op, value);
        else on_lite_write(op);
    }

    void lite_edge(const Sampled& s, uint64_t now) {
        if (lite_ != Lite::Idle && now - lite_since_ > 10000)
            throw HangError("the AXI-Lite slave did not answer an access to " +
                            lite_q_.front().reg);
        switch (lite_) {
            case Lite::Write:
                aw_done_ |= s.aw;
                w_done_ |= s.w;
                if (aw_done_ && w_done_) lite_ = Lite::WriteResp;
                break;
            case Lite::WriteResp:
                if (s.b) lite_finish(false, 0);
                break;
            case Lite::ReadAddr:
                if (s.lar) lite_ = Lite::ReadData;
                break;
            case Lite::ReadData:
                if (s.lr) lite_finish(true, s.lrdata);
                break;
            case Lite::Idle:
                break;
        }
        if (lite_ == Lite::Idle && !lite_q_.empty()) {
            lite_ = lite_q_.front().write ? Lite::Write : Lite::ReadAddr;
            aw_done_ = w_done_ = false;
            lite_since_ = now;
        }
    }
};

}  // namespace evh
