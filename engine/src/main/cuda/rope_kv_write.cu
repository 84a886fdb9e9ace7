// A decode or prompt step's attention inputs in one launch: RoPE on the rows' queries and keys (as
// rope_f32), then their keys and values written into the paged cache (as paged_kv_write_*): four
// launches of rope.cu and paged_kv.cu in one, with the same arithmetic.
//   q: (rows, q_heads, head_dim), k: (rows, kv_heads, head_dim), both turned in place when
//   rotary_dim > 0;  v: (rows, kv_heads, head_dim);  positions: (rows) int32;
//   destinations: (rows) int32 cache rows;  key_cache, value_cache: as paged_kv.cu.
// Grid: (rows); block: COIL_ROW_THREADS.
// The turns (sine and cosine of each pair i) depend on the position only, a step input: they are
// computed into shared memory before coil_grid_dependency_wait, while q and k are still being made.
// Included after rope.cu and paged_kv.cu in the build's single translation unit (their helpers).
#include "common.cuh"

// Pairs of the widest rotary dims whose turns are computed before the wait (rotary_dim ≤ 256).
#define COIL_ROPE_TURNS 128

// Row t of x (heads, head_dim) turned by the row's turns (sines, cosines: (half)).
static __device__ __forceinline__ void coil_rope_row_turned(float* x, int t, int heads, int head_dim, int half,
        const double* sines, const double* cosines) {
    for (int pair = threadIdx.x; pair < heads * half; pair += blockDim.x) {
        const int h = pair / half;
        const int i = pair - h * half;
        coil_rope_pair(x + ((size_t) t * heads + h) * head_dim + i, half, sines[i], cosines[i]);
    }
}

template <typename T>
static __device__ __forceinline__ void coil_rope_kv_write(float* q, float* k, const float* v,
        const int* __restrict__ positions, int q_heads, int kv_heads, int head_dim, int rotary_dim, float theta,
        const int* __restrict__ destinations, T* key_cache, T* value_cache, int padded_head_dim) {
    __shared__ double sines[COIL_ROPE_TURNS];
    __shared__ double cosines[COIL_ROPE_TURNS];
    const int t = blockIdx.x;
    const int half = rotary_dim / 2;
    const bool early = rotary_dim > 0 && half <= COIL_ROPE_TURNS;
    const float position = rotary_dim > 0 ? (float) positions[t] : 0.0f;
    if (early) {
        for (int i = threadIdx.x; i < half; i += blockDim.x) {
            coil_rope_turn(position, i, rotary_dim, theta, sines[i], cosines[i]);
        }
    }
    COIL_AFTER_PREVIOUS_KERNEL();
    if (early) {
        __syncthreads();
        coil_rope_row_turned(q, t, q_heads, head_dim, half, sines, cosines);
        coil_rope_row_turned(k, t, kv_heads, head_dim, half, sines, cosines);
        __syncthreads(); // the turned keys, written by other threads, are what the cache gets
    } else if (rotary_dim > 0) {
        coil_rope_row(q, t, position, q_heads, head_dim, rotary_dim, theta);
        coil_rope_row(k, t, position, kv_heads, head_dim, rotary_dim, theta);
        __syncthreads();
    }
    coil_paged_write(k, destinations, key_cache, kv_heads, head_dim, padded_head_dim, t);
    coil_paged_write(v, destinations, value_cache, kv_heads, head_dim, padded_head_dim, t);
}

extern "C" __global__ void rope_kv_write_f32(float* q, float* k, const float* v, const int* positions,
        int q_heads, int kv_heads, int head_dim, int rotary_dim, float theta, const int* destinations,
        float* key_cache, float* value_cache, int padded_head_dim) {
    coil_rope_kv_write(q, k, v, positions, q_heads, kv_heads, head_dim, rotary_dim, theta, destinations, key_cache,
            value_cache, padded_head_dim);
}

extern "C" __global__ void rope_kv_write_bf16(float* q, float* k, const float* v, const int* positions,
        int q_heads, int kv_heads, int head_dim, int rotary_dim, float theta, const int* destinations,
        __nv_bfloat16* key_cache, __nv_bfloat16* value_cache, int padded_head_dim) {
    coil_rope_kv_write(q, k, v, positions, q_heads, kv_heads, head_dim, rotary_dim, theta, destinations, key_cache,
            value_cache, padded_head_dim);
}
