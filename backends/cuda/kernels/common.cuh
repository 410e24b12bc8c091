// Shared by every kernel source: float and double entry points, and a block-wide sum.
#pragma once
#define TL_BLOCK 128  // threads of the row kernels' blocks: 4 warps

__device__ __forceinline__ float neg_inf(float) { return __int_as_float(0xff800000); }
__device__ __forceinline__ double neg_inf(double) { return __longlong_as_double(0xfff0000000000000ULL); }

// sum over the block of v (every thread of the block calls it; the result reaches all of them)
template <typename T> __device__ __forceinline__ T block_sum(T v) {
    __shared__ T part[TL_BLOCK / 32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();  // part[] is free again (an earlier call may still read it)
    if (lane == 0) part[warp] = v;
    __syncthreads();
    T s = part[0];
    for (int w = 1; w < TL_BLOCK / 32; ++w) s += part[w];  // in warp order: the same sum on every thread
    return s;
}

template <typename T> __device__ __forceinline__ T block_max(T v) {
    __shared__ T part[TL_BLOCK / 32];
    for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();
    if (lane == 0) part[warp] = v;
    __syncthreads();
    T s = part[0];
    for (int w = 1; w < TL_BLOCK / 32; ++w) s = max(s, part[w]);
    return s;
}
