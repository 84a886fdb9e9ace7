// Embedding lookup: rows of the table, widened to f32 and scaled.
#include "common.cuh"

// out[t, :] = table[ids[t], :] · multiplier
//   ids: (tokens);  table: (vocab, hidden) in bf16, f16 or f32;  out: (tokens, hidden)
// Grid: (tokens); block: COIL_ROW_THREADS threads striding over the row.
// An id outside [0, vocab) writes a row of NaN rather than reading out of bounds: the host checks
// ids it uploads, and ids sampled on the device are in range by construction.
// The multiplier is applied only when it is not 1, as the CPU path does (one f32 rounding).
template <typename T>
static __device__ __forceinline__ float coil_widen(T value);
template <>
__device__ __forceinline__ float coil_widen<__nv_bfloat16>(__nv_bfloat16 value) { return __bfloat162float(value); }
template <>
__device__ __forceinline__ float coil_widen<__half>(__half value) { return __half2float(value); }
template <>
__device__ __forceinline__ float coil_widen<float>(float value) { return value; }

template <typename T>
static __device__ __forceinline__ void coil_embedding(const int* __restrict__ ids, const T* __restrict__ table,
        float* __restrict__ out, int hidden, int vocab, float multiplier) {
    coil_trace_mark(COIL_MARK_EMBEDDING);
    // A decode step's first product, launched programmatically after this, may load its weights now
    // (it waits for this kernel before reading the rows).
    coil_launch_dependents();
    const int t = blockIdx.x;
    const int id = ids[t];
    float* row = out + (size_t) t * hidden;
    if (id < 0 || id >= vocab) {
        for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
            row[i] = __int_as_float(0x7fc00000);
        }
        return;
    }
    const T* source = table + (size_t) id * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        const float value = coil_widen<T>(source[i]);
        row[i] = multiplier == 1.0f ? value : __fmul_rn(value, multiplier);
    }
}

extern "C" __global__ void embedding_bf16(const int* __restrict__ ids, const __nv_bfloat16* __restrict__ table,
        float* __restrict__ out, int hidden, int vocab, float multiplier) {
    coil_embedding<__nv_bfloat16>(ids, table, out, hidden, vocab, multiplier);
}

extern "C" __global__ void embedding_f16(const int* __restrict__ ids, const __half* __restrict__ table,
        float* __restrict__ out, int hidden, int vocab, float multiplier) {
    coil_embedding<__half>(ids, table, out, hidden, vocab, multiplier);
}

extern "C" __global__ void embedding_f32(const int* __restrict__ ids, const float* __restrict__ table,
        float* __restrict__ out, int hidden, int vocab, float multiplier) {
    coil_embedding<float>(ids, table, out, hidden, vocab, multiplier);
}
