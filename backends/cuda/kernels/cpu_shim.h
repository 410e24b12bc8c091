// Compiles a CUDA C++ kernel source as plain C++ so that its own code runs on a CPU (tests and the
// GPU check's dry run; backends/cuda/cpu_run.py). One block runs at a time, its threads as
// cooperative coroutines on one OS thread: __syncthreads() switches to the next thread of the block,
// so __shared__ memory (a static here) is the block's, and the order of every sum is fixed.
// A warp shuffle is a block-wide step here: kernels call them with every thread of the block. A kernel
// whose first block waits at no barrier has none (a barrier must be reached by every thread of a
// block): its other blocks run their threads as plain calls.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ucontext.h>
#include <vector>
#include <algorithm>

#define __global__ extern "C"
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __restrict__ __restrict

struct dim3 { unsigned x = 1, y = 1, z = 1; };
static dim3 threadIdx, blockIdx, blockDim, gridDim;

using std::min;
using std::max;
static inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
static inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
static inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }

namespace shim {
// Switching threads: on x86-64 a few instructions that swap the callee-saved registers and the
// stack (glibc's swapcontext makes a system call each time, for the signal mask); elsewhere ucontext.
#if defined(__x86_64__)
extern "C" void shim_switch(void** save_sp, void* load_sp);
asm(R"(
.text
.p2align 4
.hidden shim_switch
.globl shim_switch
.type shim_switch,@function
shim_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
)");
struct Context { void* sp = nullptr; };
#else
struct Context { ucontext_t uc; };
#endif

struct Thread { Context ctx; std::vector<char> stack; bool done = false; };
static std::vector<Thread> threads;
static Context scheduler;
static unsigned current = 0;
static void (*body)(void**) = nullptr;
static void** params = nullptr;
static uint64_t exchange[2][1024];  // a slot a thread in each of two rows, for the shuffles
static unsigned parity[1024];  // which row a thread's next shuffle uses (all of a block's alike)
static bool barrier_seen = false;  // whether a thread of this launch has waited at a barrier

static void set_index(unsigned t) {
    threadIdx.x = t % blockDim.x;
    threadIdx.y = (t / blockDim.x) % blockDim.y;
    threadIdx.z = t / (blockDim.x * blockDim.y);
}

static void to(Context& save, Context& load) {
#if defined(__x86_64__)
    shim_switch(&save.sp, load.sp);
#else
    swapcontext(&save.uc, &load.uc);
#endif
}

static void yield() {  // to the scheduler, which runs the block's threads in turn
    barrier_seen = true;
    to(threads[current].ctx, scheduler);
    set_index(current);
}

static void entry() {
    body(params);
    threads[current].done = true;
    to(threads[current].ctx, scheduler);  // never resumed
}

static void start(Thread& th) {  // a context that begins in entry() on the thread's own stack
    th.done = false;
#if defined(__x86_64__)
    uintptr_t top = ((uintptr_t)(th.stack.data() + th.stack.size())) & ~(uintptr_t)15;
    void** sp = (void**)top;
    *--sp = nullptr;  // entry's return address: never used
    *--sp = (void*)&entry;
    for (int i = 0; i < 6; ++i) *--sp = nullptr;  // rbp rbx r12..r15
    uint32_t csr[2];
    __asm__ volatile("stmxcsr %0" : "=m"(csr[0]));
    __asm__ volatile("fnstcw %0" : "=m"(csr[1]));
    sp -= 1;
    std::memcpy(sp, csr, 8);
    th.ctx.sp = sp;
#else
    getcontext(&th.ctx.uc);
    th.ctx.uc.uc_stack.ss_sp = th.stack.data();
    th.ctx.uc.uc_stack.ss_size = th.stack.size();
    th.ctx.uc.uc_link = nullptr;
    makecontext(&th.ctx.uc, entry, 0);
#endif
}
}  // namespace shim

static inline void __syncthreads() {
    // every thread of the block reaches the barrier before any leaves it: one yield each, in turn
    shim::yield();
}
static inline void __syncwarp(unsigned = 0xffffffffu) { __syncthreads(); }

template <typename T> static inline T __shfl_xor_sync(unsigned, T v, int lane_mask, int width = 32) {
    // one barrier a shuffle: calls alternate between two exchange rows, so a thread that is already at
    // the next shuffle never overwrites a slot another thread has still to read
    static_assert(sizeof(T) <= 8, "shuffle of a word of at most 8 bytes");
    unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    uint64_t* row = shim::exchange[shim::parity[t] ^= 1];
    std::memcpy(&row[t], &v, sizeof(T));
    __syncthreads();
    unsigned lane = t % width, other = (t - lane) + (lane ^ (unsigned)lane_mask);
    T got;
    std::memcpy(&got, &row[other], sizeof(T));
    return got;
}

// Run body(params) on every thread of a (gx, gy, gz) grid of (bx, by, bz) blocks, a block at a time.
extern "C" int shim_launch(void (*fn)(void**), void** args, unsigned gx, unsigned gy, unsigned gz,
                           unsigned bx, unsigned by, unsigned bz) {
    unsigned n = bx * by * bz;
    if (n == 0 || n > 1024) return 1;
    gridDim.x = gx; gridDim.y = gy; gridDim.z = gz;
    blockDim.x = bx; blockDim.y = by; blockDim.z = bz;
    shim::body = fn;
    shim::params = args;
    shim::threads.resize(n);
    shim::barrier_seen = false;
    for (unsigned b = 0; b < gx * gy * gz; ++b) {
        blockIdx.x = b % gx; blockIdx.y = (b / gx) % gy; blockIdx.z = b / (gx * gy);
        if (b > 0 && !shim::barrier_seen) {  // a kernel without barriers: its threads one after another
            for (unsigned t = 0; t < n; ++t) {
                shim::set_index(t);
                fn(args);
            }
            continue;
        }
        std::memset(shim::parity, 0, sizeof shim::parity);
        for (unsigned t = 0; t < n; ++t) {
            shim::Thread& th = shim::threads[t];
            if (th.stack.empty()) th.stack.resize(1 << 16);
            shim::start(th);
        }
        for (bool left = true; left;) {  // one round: each live thread runs to its next barrier or its end
            left = false;
            for (unsigned t = 0; t < n; ++t) {
                if (shim::threads[t].done) continue;
                shim::current = t;
                shim::set_index(t);
                shim::to(shim::scheduler, shim::threads[t].ctx);
                left = left || !shim::threads[t].done;
            }
        }
    }
    return 0;
}

static inline float __int_as_float(int v) { float f; std::memcpy(&f, &v, 4); return f; }
static inline float __int_as_float(unsigned v) { float f; std::memcpy(&f, &v, 4); return f; }
static inline double __longlong_as_double(unsigned long long v) { double f; std::memcpy(&f, &v, 8); return f; }
