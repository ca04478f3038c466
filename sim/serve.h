// The transport server: `fullframe serve` runs the top's models (topbench.h) one transaction
// per command, for the host driver's rtl transport (edgevit_hw.sim.transport). Nothing runs
// between commands; each command runs the cycles its transaction needs.
//
// Commands (one text line on stdin; a binary payload follows where stated), replies (one text
// line on stdout, `ok ...` or `err MESSAGE`; a binary payload follows where stated):
//   config PIXELS_PER_BEAT TOKEN_BITS TOKENS_PER_BEAT BASE LATENCY OUTSTANDING PORT_BYTES
//                                                                      -> ok
//   reset                       8 cycles in reset, 2 out               -> ok CYCLE
//   image N + N bytes           the DRAM image at BASE                 -> ok
//   write OFFSET VALUE          one AXI-Lite write, to its response    -> ok CYCLE
//   read OFFSET                 one AXI-Lite read, to its data         -> ok VALUE CYCLE
//   send N + N*(P+1) bytes      queue a frame of N beats (P = PIXELS_PER_BEAT pixels, tlast)
//                                                                      -> ok INDEX
//   run MAX                     cycles until a token frame is waiting, at most MAX
//                                                                      -> ok RAN WAITING
//   take                        the oldest waiting token frame -> ok N CYCLE + N int32
//   pixels INDEX                a sent frame's first and last pixel cycles (0: not yet)
//                                                                      -> ok FIRST LAST
//   fault ADDR | fault          DRAM reads of the beat at byte ADDR answer SLVERR from now
//                               on | no more faults                    -> ok
//   quit
// CYCLE is the cycle count after the command (the cycle of the last token for `take`).

#pragma once

#include <cinttypes>
#include <cstdio>
#include <deque>
#include <string>
#include <vector>

#include "topbench.h"

namespace evh {

class ServeBench : public TopBench {
  public:
    explicit ServeBench(VerilatedContext* ctx) : TopBench(ctx, DramConfig{}, StreamConfig{}) {}

    void configure(const StreamConfig& streams, const DramConfig& d) {
        streams_ = streams;
        set_dram(d);
    }

    uint32_t access(bool write, uint32_t offset, uint32_t value) {
        char name[32];
        std::snprintf(name, sizeof name, "offset 0x%x", offset);
        lite_issue({write, name, offset, value, 0, -1});
        done_ = false;
        while (!done_) step();
        return value_;
    }

    uint64_t run(uint64_t max) {
        const uint64_t c0 = cyc_;
        while (cyc_ - c0 < max && waiting_.empty()) step();
        return cyc_ - c0;
    }

    size_t waiting() const { return waiting_.size(); }

    // The oldest waiting token frame: its elements and the cycle of its last element.
    std::vector<int32_t> take(uint64_t* cycle) {
        const TokenFrame f = waiting_.front();
        waiting_.pop_front();
        std::vector<int32_t> out(tokens_.begin(), tokens_.begin() + f.elements);
        tokens_.erase(tokens_.begin(), tokens_.begin() + f.elements);
        *cycle = f.cycle;
        return out;
    }

    void pixels(size_t k, uint64_t* first, uint64_t* last) const {
        *first = k < first_pixel_.size() ? first_pixel_[k] : 0;
        *last = k < last_pixel_.size() ? last_pixel_[k] : 0;
    }

    size_t frames_sent() const { return frames_.size(); }

  private:
    struct TokenFrame {
        uint64_t cycle, elements;
    };

    void on_token_frame(size_t, uint64_t cycle, uint64_t elements) override {
        waiting_.push_back({cycle, elements});
    }
    void on_lite_write(const LiteOp&) override { done_ = true; }
    void on_lite_read(const LiteOp&, uint32_t value) override {
        value_ = value;
        done_ = true;
    }

    std::deque<TokenFrame> waiting_;
    bool done_ = false;
    uint32_t value_ = 0;
};

inline std::vector<uint8_t> read_payload(size_t n) {
    std::vector<uint8_t> buf(n);
    if (n && std::fread(buf.data(), 1, n, stdin) != n)
        throw std::runtime_error("the command's payload ended early");
    return buf;
}

inline void reply(const std::string& line) {
    std::fputs((line + "\n").c_str(), stdout);
}

// One command; returns false on `quit`.
inline bool serve_one(ServeBench& b, const std::string& line) {
    char cmd[16] = {0};
    uint64_t a[7] = {0, 0, 0, 0, 0, 0, 0};
    const int n = std::sscanf(line.c_str(), "%15s %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
                              " %" SCNu64 " %" SCNu64 " %" SCNu64, cmd, &a[0], &a[1], &a[2], &a[3],
                              &a[4], &a[5], &a[6]);
    const std::string c = n > 0 ? cmd : "";
    char out[128];
    if (c == "quit") return false;
    if (c == "config" && n == 8) {
        b.configure(StreamConfig{a[0], a[1], a[2]}, DramConfig{a[3], a[4], a[5], a[6]});
        reply("ok");
    } else if (c == "reset") {
        b.reset();
        std::snprintf(out, sizeof out, "ok %" PRIu64, b.cycle());
        reply(out);
    } else if (c == "image" && n == 2) {
        b.set_image(read_payload(a[0]));
        reply("ok");
    } else if ((c == "write" && n == 3) || (c == "read" && n == 2)) {
        const uint32_t v = b.access(c == "write", uint32_t(a[0]), uint32_t(a[1]));
        if (c == "write") std::snprintf(out, sizeof out, "ok %" PRIu64, b.cycle());
        else std::snprintf(out, sizeof out, "ok %u %" PRIu64, v, b.cycle());
        reply(out);
    } else if (c == "send" && n == 2) {
        const std::vector<uint8_t> beats = read_payload(b.beat_size() * a[0]);
        b.queue_frame(beats.data(), a[0]);
        std::snprintf(out, sizeof out, "ok %zu", b.frames_sent() - 1);
        reply(out);
    } else if (c == "run" && n == 2) {
        const uint64_t ran = b.run(a[0]);
        std::snprintf(out, sizeof out, "ok %" PRIu64 " %zu", ran, b.waiting());
        reply(out);
    } else if (c == "take" && n == 1) {
        if (!b.waiting()) throw std::runtime_error("no token frame is waiting");
        uint64_t cycle = 0;
        const std::vector<int32_t> v = b.take(&cycle);
        std::snprintf(out, sizeof out, "ok %zu %" PRIu64, v.size(), cycle);
        reply(out);
        std::fwrite(v.data(), 4, v.size(), stdout);
    } else if (c == "fault" && n <= 2) {
        if (n == 2) b.fault(a[0]);
        else b.clear_faults();
        reply("ok");
    } else if (c == "pixels" && n == 2) {
        uint64_t first = 0, last = 0;
        b.pixels(a[0], &first, &last);
        std::snprintf(out, sizeof out, "ok %" PRIu64 " %" PRIu64, first, last);
        reply(out);
    } else {
        throw std::runtime_error("unknown command or arguments: " + line);
    }
    return true;
}

inline int serve(VerilatedContext* ctx) {
    ServeBench bench(ctx);
    std::string line;
    for (int ch; (ch = std::fgetc(stdin)) != EOF;) {
        if (ch != '\n') {
            line.push_back(char(ch));
            continue;
        }
        try {
            if (!serve_one(bench, line)) return 0;
        } catch (const std::exception& e) {
            std::string msg = e.what();
            for (char& x : msg)
                if (x == '\n') x = ' ';
            reply("err " + msg);
        }
        std::fflush(stdout);
        line.clear();
    }
    return 0;
}

}  // namespace evh
