// A decode or prompt step's attention inputs in one launch: RoPE on the rows' queries and keys (as
// rope_f32), then their keys and values written into the paged cache (as paged_kv_write_*): four
// launches of rope.cu and paged_kv.cu in one, with the same arithmetic.
//   q: (rows, q_heads, head_dim), k: (rows, kv_heads, head_dim), both turned in place when
//   rotary_dim > 0;  v: (rows, kv_heads, head_dim);  positions: (rows) int32;
//   destinations: (rows) int32 cache rows;  key_cache, value_cache: as paged_kv.cu.
// Grid: (rows); block: COIL_ROW_THREADS.
// Included after rope.cu and paged_kv.cu in the build's single translation unit (their helpers).
#include "common.cuh"

template <typename T>
static __device__ __forceinline__ void coil_rope_kv_write(float* q, float* k, const float* v,
        const int* __restrict__ positions, int q_heads, int kv_heads, int head_dim, int rotary_dim, float theta,
        const int* __restrict__ destinations, T* key_cache, T* value_cache, int padded_head_dim) {
    const int t = blockIdx.x;
    if (rotary_dim > 0) {
        const float position = (float) positions[t];
        coil_rope_row(q, t, position, q_heads, head_dim, rotary_dim, theta);
        coil_rope_row(k, t, position, kv_heads, head_dim, rotary_dim, theta);
        __syncthreads(); // the turned keys, written by other threads, are what the cache gets
    }
    coil_paged_write(k, destinations, key_cache, kv_heads, head_dim, padded_head_dim, t);
    coil_paged_write(v, destinations, value_cache, kv_heads, head_dim, padded_head_dim, t);
}

extern "C" __global__ void rope_kv_write_f32(float* q, float* k, const float* v, const int* positions,
        int q_heads, int kv_heads, int head_dim, int rotary_dim, float theta, const int* destinations,
        float* key_cache, float* value_cache, int padded_head_dim) {
    COIL_AFTER_PREVIOUS_KERNEL();
    coil_rope_kv_write(q, k, v, positions, q_heads, kv_heads, head_dim, rotary_dim, theta, destinations, key_cache,
            value_cache, padded_head_dim);
}

extern "C" __global__ void rope_kv_write_bf16(float* q, float* k, const float* v, const int* positions,
        int q_heads, int kv_heads, int head_dim, int rotary_dim, float theta, const int* destinations,
        __nv_bfloat16* key_cache, __nv_bfloat16* value_cache, int padded_head_dim) {
    COIL_AFTER_PREVIOUS_KERNEL();
    coil_rope_kv_write(q, k, v, positions, q_heads, kv_heads, head_dim, rotary_dim, theta, destinations, key_cache,
            value_cache, padded_head_dim);
}
