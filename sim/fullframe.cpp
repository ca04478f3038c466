// Whole-frame testbench of the accelerator top (evh_top) for Verilator: no Python per cycle.
//
// Built by edgevit_hw.sim.fullframe (verilator --cc --exe, --prefix Vtop). Two front ends over
// the same models (topbench.h: DRAM, AXI-Lite master, pixel source, token sink):
//   fullframe JOB     whole frames from a job file (below);
//   fullframe serve   the host driver's transport: one transaction per command on stdin
//                     (serve.h, edgevit_hw.sim.transport).
// JOB is a text file written by the Python side (keys below). The job's pixel source keeps
// TVALID high frame after frame; the first beat of frame k+1 waits only for its TASK write,
// issued when frame k's first pixel is taken (the hardware reads TASK at a frame's first pixel;
// frames may stream in while the previous frame's program runs).
// Protocol: reset, write DRAM_BASE_LO/HI, FRAMES, TASK (frame 0), CTRL.ap_start; stream the
// frames. Programs run frame after frame (dbg_pc steps 1..insns, then back to 0 when the next
// frame's program starts); FRAME_CYCLES of frame k is read when program k+1 starts (it holds
// the last finished frame), the last one at the end; when every pixel is in, poll CTRL until
// ap_idle, then read the `counter` registers in the listed order (LO before HI).
// Every wait is bounded: no progress (pixel, token, DRAM beat, pc change) for `stall_limit`
// cycles or more than `max_cycles` in all ends the run with an error naming the pc and STATUS.
//
// JOB keys (one per line): image PATH | beats PATH | out DIR | base N | latency N |
// outstanding N | port_bytes N | pixels_per_beat N | token_bits N | tokens_per_beat N |
// tokens_per_frame N | insns N | max_cycles N |
// stall_limit N | ctrl_idle_mask N | reg NAME OFFSET | counter NAME | frame TASK NBEATS |
// waves PATH | waves_from N | waves_to N | dump_frame K | dump PC MEMNAME | stop_after_dump 0/1
// `beats` holds every frame's beats, pixels_per_beat + 1 bytes each (pixels, tlast), in order.
// Outputs in DIR: result.json (scalars, per-frame events, counters, error), tokens.bin (int32
// elements of every received frame, in order), pc.bin (uint64 pairs: cycle, new dbg_pc value),
// bursts.bin (int64 triples per AXI read burst accepted: cycle, first beat in the image, beats),
// dump.bin (debug builds: per dump, u32 pc, u32 name length, name, u32 words, u32 word bytes,
// the words little-endian). A cycle is numbered by the rising edge that ends it (the first edge
// after reset release is cycle 1 of the run, counted from the start of reset).

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "serve.h"
#include "topbench.h"
#ifdef EVH_VPI
#include "verilated_vpi.h"
#endif

namespace {

using evh::HangError;
using evh::LiteOp;

// ---------------------------------------------------------------------- job ----
struct FrameIn {
    uint32_t task;
    uint64_t nbeats, offset;
};

struct Job {
    std::string image_path, beats_path, out, waves;
    uint64_t base = 0x10000, latency = 40, outstanding = 64, port_bytes = 16;
    uint64_t pixels_per_beat = 1, token_bits = 8, tokens_per_beat = 1, tokens_per_frame = 0;
    uint64_t insns = 0;
    uint64_t max_cycles = 100000000, stall_limit = 1000000, ctrl_idle_mask = 4;
    uint64_t waves_from = 0, waves_to = UINT64_MAX;
    int64_t dump_frame = -1;
    bool stop_after_dump = true;
    std::map<std::string, uint32_t> regs;
    std::vector<std::string> counters;
    std::vector<FrameIn> frames;
    std::map<uint64_t, std::vector<std::string>> dumps;  // pc -> memories to dump after it
};

Job read_job(const char* path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error(std::string("cannot read job file ") + path);
    Job j;
    std::string line, key;
    uint64_t offset = 0;
    while (std::getline(in, line)) {
        std::istringstream s(line);
        if (!(s >> key)) continue;
        if (key == "image") s >> j.image_path;
        else if (key == "beats") s >> j.beats_path;
        else if (key == "out") s >> j.out;
        else if (key == "waves") s >> j.waves;
        else if (key == "base") s >> j.base;
        else if (key == "latency") s >> j.latency;
        else if (key == "outstanding") s >> j.outstanding;
        else if (key == "port_bytes") s >> j.port_bytes;
        else if (key == "pixels_per_beat") s >> j.pixels_per_beat;
        else if (key == "token_bits") s >> j.token_bits;
        else if (key == "tokens_per_beat") s >> j.tokens_per_beat;
        else if (key == "tokens_per_frame") s >> j.tokens_per_frame;
        else if (key == "insns") s >> j.insns;
        else if (key == "max_cycles") s >> j.max_cycles;
        else if (key == "stall_limit") s >> j.stall_limit;
        else if (key == "ctrl_idle_mask") s >> j.ctrl_idle_mask;
        else if (key == "waves_from") s >> j.waves_from;
        else if (key == "waves_to") s >> j.waves_to;
        else if (key == "dump_frame") s >> j.dump_frame;
        else if (key == "stop_after_dump") s >> j.stop_after_dump;
        else if (key == "reg") {
            std::string name;
            uint32_t off;
            s >> name >> off;
            j.regs[name] = off;
        } else if (key == "counter") {
            std::string name;
            s >> name;
            j.counters.push_back(name);
        } else if (key == "frame") {
            FrameIn f{};
            s >> f.task >> f.nbeats;
            f.offset = offset;
            offset += f.nbeats;
            j.frames.push_back(f);
        } else if (key == "dump") {
            uint64_t pc;
            std::string mem;
            s >> pc >> mem;
            j.dumps[pc].push_back(mem);
        } else {
            throw std::runtime_error("unknown job key '" + key + "'");
        }
        if (s.fail()) throw std::runtime_error("bad job line: " + line);
    }
    return j;
}

std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
}

// ---------------------------------------------------------- per-frame records ----
struct FrameOut {
    uint32_t task = 0;
    uint64_t last_token = 0, tokens = 0;
    uint64_t frame_cycles = 0;
    bool have_frame_cycles = false;
};

// ----------------------------------------------------------------- the bench ----
class Bench : public evh::TopBench {
  public:
    Bench(Job job, VerilatedContext* ctx)
        : TopBench(ctx, {job.base, job.latency, job.outstanding, job.port_bytes},
                   {job.pixels_per_beat, job.token_bits, job.tokens_per_beat}),
          j_(std::move(job)) {
#ifdef EVH_FST
        waves_from_ = j_.waves_from;
        waves_to_ = j_.waves_to;
#endif
        set_image(read_file(j_.image_path));
        const std::vector<uint8_t> beats = read_file(j_.beats_path);
        uint64_t total = 0;
        for (auto& f : j_.frames) total += f.nbeats;
        if (beats.size() != beat_size() * total)
            throw std::runtime_error("beats file size does not match the frames of the job");
        for (const auto& f : j_.frames) queue_frame(&beats[beat_size() * f.offset], f.nbeats);
        for (const char* r : {"CTRL", "DRAM_BASE_LO", "DRAM_BASE_HI", "TASK", "FRAMES",
                              "STATUS", "FRAME_CYCLES_LO", "FRAME_CYCLES_HI"})
            if (!j_.regs.count(r)) throw std::runtime_error(std::string("job lacks reg ") + r);
        out_.resize(j_.frames.size());
        for (size_t k = 0; k < j_.frames.size(); ++k) out_[k].task = j_.frames[k].task;
        task_written_.assign(j_.frames.size(), false);
    }

    void run();
    void write_results(const std::string& error, double wall, double cpu);

  private:
    enum Tag { kNone, kFrameLo, kFrameHi, kCtrlPoll, kCounter, kStatus };

    void issue(bool write, const std::string& reg, uint32_t data, int tag, int64_t arg) {
        lite_issue({write, reg, j_.regs.at(reg), data, tag, arg});
    }
    bool may_start(size_t frame) override { return started_ && task_written_[frame]; }
    void on_first_pixel(size_t frame) override {
        if (frame + 1 < j_.frames.size())
            issue(true, "TASK", j_.frames[frame + 1].task, kNone, int64_t(frame + 1));
    }
    void on_token_frame(size_t frame, uint64_t cycle, uint64_t elements) override;
    void on_lite_write(const LiteOp& op) override {
        if (op.reg == "TASK" && op.arg >= 0) task_written_[op.arg] = true;
    }
    void on_lite_read(const LiteOp& op, uint32_t value) override;
    void on_pc(uint64_t cycle, uint32_t pc) override;
    void check_limits();
    void loop();
    std::string describe();
    uint32_t read_status_now();
    void dump_memories(uint64_t pc);
    void read_frame_cycles(int64_t frame) {
        if (frame >= int64_t(out_.size()) || frame_cycles_asked_.count(frame)) return;
        frame_cycles_asked_.insert(frame);
        issue(false, "FRAME_CYCLES_LO", 0, kFrameLo, frame);
        issue(false, "FRAME_CYCLES_HI", 0, kFrameHi, frame);
    }

    Job j_;
    std::vector<bool> task_written_;
    bool started_ = false;

    std::vector<FrameOut> out_;
    std::vector<uint64_t> pc_events_;
    int64_t programs_ = 0;  // programs finished (dbg_pc reached insns): frames in order
    std::map<std::string, uint64_t> counters_;
    std::set<int64_t> frame_cycles_asked_;
    std::vector<std::string> warnings_;

    bool idle_seen_ = false, finished_ = false, dump_done_ = false;
    uint64_t next_poll_ = 0;
    FILE* dump_file_ = nullptr;
};

void Bench::on_token_frame(size_t frame, uint64_t cycle, uint64_t elements) {
    if (frame < out_.size()) {
        out_[frame].last_token = cycle;
        out_[frame].tokens = elements;
    } else {
        warnings_.push_back("more token frames than frames sent");
    }
    if (elements != j_.tokens_per_frame)
        warnings_.push_back("token frame " + std::to_string(frame) + " has " +
                            std::to_string(elements) + " elements, not " +
                            std::to_string(j_.tokens_per_frame));
}

void Bench::on_pc(uint64_t cycle, uint32_t pc) {
    pc_events_.push_back(cycle);
    pc_events_.push_back(pc);
    if (!j_.dumps.empty() && programs_ == j_.dump_frame && pc == pc_ + 1 &&
        j_.dumps.count(pc_)) {
        dump_memories(pc_);
        if (pc_ == j_.dumps.rbegin()->first) dump_done_ = true;
    }
    if (pc == j_.insns) ++programs_;
    // The next program starts (pc back to 0): the previous frame's FRAME_CYCLES is final.
    if (pc == 0 && programs_ > 0) read_frame_cycles(programs_ - 1);
}

void Bench::dump_memories(uint64_t pc) {
#ifdef EVH_VPI
    if (!dump_file_) {
        dump_file_ = std::fopen((j_.out + "/dump.bin").c_str(), "wb");
        if (!dump_file_) throw std::runtime_error("cannot write dump.bin");
    }
    for (const std::string& name : j_.dumps.at(pc)) {
        vpiHandle mem = vpi_handle_by_name(const_cast<PLI_BYTE8*>(name.c_str()), nullptr);
        if (!mem) throw std::runtime_error("no VPI object named " + name);
        std::vector<uint32_t> data;
        uint32_t words = 0, wbytes = 0;
        // Words 0, 1, ... (Amaranth memories are declared [depth-1:0]) until out of range.
        while (vpiHandle w = vpi_handle_by_index(mem, int(words))) {
            const uint32_t bits = vpi_get(vpiSize, w);
            const uint32_t n32 = (bits + 31) / 32;
            wbytes = 4 * n32;
            s_vpi_value v;
            v.format = vpiVectorVal;
            vpi_get_value(w, &v);
            for (uint32_t i = 0; i < n32; ++i) data.push_back(v.value.vector[i].aval);
            ++words;
            vpi_release_handle(w);
        }
        uint32_t head[2] = {uint32_t(pc), uint32_t(name.size())};
        std::fwrite(head, 4, 2, dump_file_);
        std::fwrite(name.data(), 1, name.size(), dump_file_);
        uint32_t shape[2] = {words, wbytes};
        std::fwrite(shape, 4, 2, dump_file_);
        std::fwrite(data.data(), 4, data.size(), dump_file_);
        vpi_release_handle(mem);
    }
    std::fflush(dump_file_);
#else
    (void)pc;
    throw std::runtime_error("memory dumps need the debug build (--vpi --public-flat-rw)");
#endif
}

void Bench::on_lite_read(const LiteOp& op, uint32_t value) {
    switch (op.tag) {
        case kFrameLo:
            out_[op.arg].frame_cycles = value;
            break;
        case kFrameHi:
            out_[op.arg].frame_cycles |= uint64_t(value) << 32;
            out_[op.arg].have_frame_cycles = true;
            break;
        case kCtrlPoll:
            if (value & j_.ctrl_idle_mask) idle_seen_ = true;
            break;
        case kCounter:
            counters_[op.reg] = value;
            break;
        default:
            break;
    }
}

std::string Bench::describe() {
    std::ostringstream s;
    s << "cycle " << cyc_ << ", pc " << pc_ << ", programs finished " << programs_
      << ", pixels sent: frame " << src_frame_ << " beat " << src_beat_
      << ", s_axis_tready " << int(top_->s_axis_tready) << ", token frames " << tok_frame_
      << " (+" << tok_in_frame_ << " elements), DRAM bursts queued " << bursts_.size();
    return s.str();
}

// After a hang: read STATUS through the lite port (bounded), abandoning queued accesses.
uint32_t Bench::read_status_now() {
    if (lite_ != Lite::Idle) return UINT32_MAX;  // the slave itself is stuck
    lite_q_.clear();
    issue(false, "STATUS", 0, kStatus, -1);
    for (int i = 0; i < 2000 && !lite_q_.empty(); ++i) {
        eval_low();
        bool lar = top_->s_axil_arvalid && top_->s_axil_arready;
        bool lr = top_->s_axil_rvalid && top_->s_axil_rready;
        uint32_t data = top_->s_axil_rdata;
        posedge();
        if (lite_ == Lite::Idle) lite_ = Lite::ReadAddr;
        else if (lite_ == Lite::ReadAddr && lar) lite_ = Lite::ReadData;
        else if (lite_ == Lite::ReadData && lr) return data;
        drive();
    }
    return UINT32_MAX;
}

void Bench::check_limits() {
    if (cyc_ - last_progress_ > j_.stall_limit)
        throw HangError("no progress for " + std::to_string(j_.stall_limit) + " cycles");
    if (cyc_ > j_.max_cycles)
        throw HangError("the run exceeded " + std::to_string(j_.max_cycles) + " cycles");
}

void Bench::run() {
#ifdef EVH_FST
    if (!j_.waves.empty()) {
        tfp_ = new VerilatedFstC;
        top_->trace(tfp_, 99);
        tfp_->open(j_.waves.c_str());
    }
#endif
    reset();  // 8 cycles with aresetn low, every input idle, then 2
    issue(true, "DRAM_BASE_LO", uint32_t(j_.base & 0xFFFFFFFFu), kNone, -1);
    issue(true, "DRAM_BASE_HI", uint32_t(j_.base >> 32), kNone, -1);
    issue(true, "FRAMES", uint32_t(j_.frames.size()), kNone, -1);
    if (!j_.frames.empty()) issue(true, "TASK", j_.frames[0].task, kNone, 0);
    issue(true, "CTRL", 1, kNone, -1);  // ap_start
    started_ = true;
    try {
        loop();
    } catch (const HangError& e) {
        const std::string where = describe();
        const uint32_t status = read_status_now();
        char st[64];
        if (status == UINT32_MAX) std::snprintf(st, sizeof st, "STATUS unreadable");
        else std::snprintf(st, sizeof st, "STATUS 0x%x", status);
        throw HangError(std::string(e.what()) + " (" + where + "; " + st + ")");
    }
}

void Bench::loop() {
    bool counters_queued = false;
    while (!finished_) {
        step();
        if (dump_done_ && j_.stop_after_dump) return;
        if (src_frame_ == j_.frames.size() && !idle_seen_) {
            if (lite_q_.empty() && cyc_ >= next_poll_) {
                issue(false, "CTRL", 0, kCtrlPoll, -1);
                next_poll_ = cyc_ + 64;
            }
        }
        if (idle_seen_ && !counters_queued) {
            counters_queued = true;
            if (programs_ > 0) read_frame_cycles(programs_ - 1);
            for (const std::string& c : j_.counters) issue(false, c, 0, kCounter, -1);
        }
        if (counters_queued && lite_q_.empty()) finished_ = true;
        if ((cyc_ & 1023) == 0) check_limits();
    }
}

std::string json_escape(const std::string& s) {
    std::string o;
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\';
        if (c == '\n') {
            o += "\\n";
            continue;
        }
        o += c;
    }
    return o;
}

void Bench::write_results(const std::string& error, double wall, double cpu) {
    std::string dir = j_.out;
    FILE* f = std::fopen((dir + "/tokens.bin").c_str(), "wb");
    if (f) {
        std::fwrite(tokens_.data(), 4, tokens_.size(), f);
        std::fclose(f);
    }
    f = std::fopen((dir + "/pc.bin").c_str(), "wb");
    if (f) {
        std::fwrite(pc_events_.data(), 8, pc_events_.size(), f);
        std::fclose(f);
    }
    f = std::fopen((dir + "/bursts.bin").c_str(), "wb");
    if (f) {
        std::fwrite(ar_log_.data(), 8, ar_log_.size(), f);
        std::fclose(f);
    }
    if (dump_file_) std::fclose(dump_file_);
    dump_file_ = nullptr;
    f = std::fopen((dir + "/result.json").c_str(), "w");
    if (!f) throw std::runtime_error("cannot write result.json in " + dir);
    std::fprintf(f, "{\n  \"cycles\": %" PRIu64 ",\n  \"wall_s\": %.6f,\n  \"cpu_s\": %.6f,\n",
                 cyc_, wall, cpu);
    std::fprintf(f, "  \"dram_beats\": %" PRIu64 ",\n  \"oob_beats\": %" PRIu64 ",\n",
                 dram_beats_, oob_beats_);
    std::fprintf(f, "  \"pc\": %u,\n  \"error\": \"%s\",\n", pc_, json_escape(error).c_str());
    std::fprintf(f, "  \"warnings\": [");
    for (size_t i = 0; i < warnings_.size(); ++i)
        std::fprintf(f, "%s\"%s\"", i ? ", " : "", json_escape(warnings_[i]).c_str());
    std::fprintf(f, "],\n  \"frames\": [\n");
    for (size_t k = 0; k < out_.size(); ++k) {
        const FrameOut& o = out_[k];
        std::fprintf(f,
                     "    {\"task\": %u, \"first_pixel\": %" PRIu64 ", \"last_pixel\": %" PRIu64
                     ", \"last_token\": %" PRIu64 ", \"tokens\": %" PRIu64
                     ", \"frame_cycles\": %" PRId64 "}%s\n",
                     o.task, first_pixel_[k], last_pixel_[k], o.last_token, o.tokens,
                     o.have_frame_cycles ? int64_t(o.frame_cycles) : int64_t(-1),
                     k + 1 < out_.size() ? "," : "");
    }
    std::fprintf(f, "  ],\n  \"counters\": {");
    size_t i = 0;
    for (const auto& kv : counters_)
        std::fprintf(f, "%s\n    \"%s\": %" PRIu64, i++ ? "," : "", kv.first.c_str(), kv.second);
    std::fprintf(f, "\n  }\n}\n");
    std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s JOB | %s serve\n", argv[0], argv[0]);
        return 2;
    }
    auto ctx = std::make_unique<VerilatedContext>();
    if (std::string(argv[1]) == "serve") return evh::serve(ctx.get());
    Job job;
    try {
        job = read_job(argv[1]);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fullframe: %s\n", e.what());
        return 2;
    }
#ifdef EVH_FST
    if (!job.waves.empty()) ctx->traceEverOn(true);
#endif
    Bench bench(job, ctx.get());
    std::string error;
    auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    int rc = 0;
    try {
        bench.run();
    } catch (const HangError& e) {
        error = e.what();
        rc = 3;
    } catch (const std::exception& e) {
        error = e.what();
        rc = 4;
    }
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double cpu = double(std::clock() - c0) / CLOCKS_PER_SEC;
    bench.write_results(error, wall, cpu);
    if (rc) std::fprintf(stderr, "fullframe: %s\n", error.c_str());
    return rc;
}
