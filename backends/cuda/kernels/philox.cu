// Philox-4x32-10 words, bit for bit those of tinyllm/random.py, one thread a counter group, and
// inverted dropout drawing its mask from the same words (no word array in memory).
#define PH_M0 0xD2511F53u
#define PH_M1 0xCD9E8D57u
#define PH_W0 0x9E3779B9u
#define PH_W1 0xBB67AE85u

__device__ __forceinline__ void philox10(unsigned c[4], unsigned k0, unsigned k1) {
    for (int r = 0; r < 10; ++r) {
        if (r) { k0 += PH_W0; k1 += PH_W1; }
        unsigned hi0 = __umulhi(c[0], PH_M0), lo0 = c[0] * PH_M0;
        unsigned hi1 = __umulhi(c[2], PH_M1), lo1 = c[2] * PH_M1;
        unsigned x0 = hi1 ^ c[1] ^ k0, x2 = hi0 ^ c[3] ^ k1;
        c[0] = x0; c[1] = lo1; c[2] = x2; c[3] = lo0;
    }
}

// word w of a draw of `total` words: group w % groups, its word w / groups (random.py's layout)
__device__ __forceinline__ unsigned philox_word(long long w, long long groups, unsigned seed_hi,
                                                unsigned step_lo, unsigned step_hi, unsigned k0, unsigned k1) {
    unsigned c[4] = {(unsigned)(w % groups), seed_hi, step_lo, step_hi};
    philox10(c, k0, k1);
    return c[w / groups];
}

// out (n,) uint64: the n words of one draw
extern "C" __global__ void philox_words(unsigned long long* out, long long n, long long groups, unsigned seed_hi,
                                        unsigned step_lo, unsigned step_hi, unsigned k0, unsigned k1) {
    long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= groups) return;
    unsigned c[4] = {(unsigned)g, seed_hi, step_lo, step_hi};
    philox10(c, k0, k1);
    for (int j = 0; j < 4; ++j) {
        long long i = j * groups + g;
        if (i < n) out[i] = c[j];
    }
}

// y = x * (word >= threshold ? scale : 0) for elements offset.. of a draw of 4 * groups words
template <typename T>
__device__ void dropout_apply(const T* x, T* y, long long n, long long offset, long long groups, unsigned threshold,
                              T scale, unsigned seed_hi, unsigned step_lo, unsigned step_hi, unsigned k0, unsigned k1) {
    long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    unsigned w = philox_word(offset + e, groups, seed_hi, step_lo, step_hi, k0, k1);
    y[e] = x[e] * (w >= threshold ? scale : (T)0);
}

extern "C" __global__ void dropout_f32(const float* x, float* y, long long n, long long offset, long long groups,
                                       unsigned threshold, float scale, unsigned seed_hi, unsigned step_lo,
                                       unsigned step_hi, unsigned k0, unsigned k1) {
    dropout_apply(x, y, n, offset, groups, threshold, scale, seed_hi, step_lo, step_hi, k0, k1);
}

extern "C" __global__ void dropout_f64(const double* x, double* y, long long n, long long offset, long long groups,
                                       unsigned threshold, double scale, unsigned seed_hi, unsigned step_lo,
                                       unsigned step_hi, unsigned k0, unsigned k1) {
    dropout_apply(x, y, n, offset, groups, threshold, scale, seed_hi, step_lo, step_hi, k0, k1);
}
