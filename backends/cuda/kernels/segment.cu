// target[idx[i]] += values[i] for rows sorted by index (the embedding's backward): the thread at the
// start of each run of equal indices sums the run's rows in order, so the sum is the same every run
// (no atomics) and no (V, C) array besides the target is made.
template <typename T>
__device__ void seg_add(T* target, const long long* sorted_idx, const long long* order, const T* values,
                        long long N, int C) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= N * C) return;
    long long i = k / C;
    int c = (int)(k % C);
    long long row = sorted_idx[i];
    if (i > 0 && sorted_idx[i - 1] == row) return;  // not the first of its run
    T s = 0;
    for (long long j = i; j < N && sorted_idx[j] == row; ++j) s += values[order[j] * C + c];
    target[row * C + c] += s;
}

extern "C" __global__ void segment_add_f32(float* target, const long long* sorted_idx, const long long* order,
                                           const float* values, long long N, int C) {
    seg_add(target, sorted_idx, order, values, N, C);
}
extern "C" __global__ void segment_add_f64(double* target, const long long* sorted_idx, const long long* order,
                                           const double* values, long long N, int C) {
    seg_add(target, sorted_idx, order, values, N, C);
}
