// Writes into and gathers from the paged K/V cache of the serving engine.
//   cache: (blocks · block_size, kv_heads, padded_head_dim) in f32 or bf16: the row of position p of
//   a sequence is table[p / block_size] · block_size + p % block_size.
// The columns past head_dim (heads the attention kernels pad to 64 or 128) are kept at zero, so a
// padded query column meets 0, never uninitialised memory that could hold a NaN.
#include "common.cuh"

static __device__ __forceinline__ void coil_store(float* out, float value) {
    *out = value;
}

static __device__ __forceinline__ void coil_store(__nv_bfloat16* out, float value) {
    *out = __float2bfloat16_rn(value);
}

static __device__ __forceinline__ float coil_load(const float* in) {
    return *in;
}

static __device__ __forceinline__ float coil_load(const __nv_bfloat16* in) {
    return __bfloat162float(*in);
}

// source: (rows, kv_heads, head_dim) f32, the new keys or values; destinations: (rows) int32 cache rows.
// Grid: (rows); block: 128 threads over kv_heads · padded_head_dim. This block writes row `row`.
template <typename T>
static __device__ void coil_paged_write(const float* source, const int* __restrict__ destinations,
        T* __restrict__ cache, int kv_heads, int head_dim, int padded_head_dim, int row) {
    const int width = kv_heads * padded_head_dim;
    const size_t to = (size_t) destinations[row] * width;
    const size_t from = (size_t) row * kv_heads * head_dim;
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
        const int head = i / padded_head_dim;
        const int column = i - head * padded_head_dim;
        coil_store(cache + to + i, column < head_dim ? source[from + head * head_dim + column] : 0.0f);
    }
}

extern "C" __global__ void paged_kv_write_f32(const float* source, const int* destinations, float* cache,
        int kv_heads, int head_dim, int padded_head_dim) {
    COIL_AFTER_PREVIOUS_KERNEL();
    coil_paged_write(source, destinations, cache, kv_heads, head_dim, padded_head_dim, blockIdx.x);
}

extern "C" __global__ void paged_kv_write_bf16(const float* source, const int* destinations, __nv_bfloat16* cache,
        int kv_heads, int head_dim, int padded_head_dim) {
    COIL_AFTER_PREVIOUS_KERNEL();
    coil_paged_write(source, destinations, cache, kv_heads, head_dim, padded_head_dim, blockIdx.x);
}

// Positions [0, count) of one sequence, contiguous and in bf16, for the prefill flash kernel.
// table: (≥ ceil(count / block_size)) int32 block ids; out: (count, kv_heads, padded_head_dim) bf16.
// Grid: (count); block: 128 threads over the row.
template <typename T>
static __device__ void coil_paged_gather(const T* __restrict__ cache, const int* __restrict__ table, int block_size,
        int width, __nv_bfloat16* __restrict__ out) {
    const int position = blockIdx.x;
    const size_t from = ((size_t) table[position / block_size] * block_size + position % block_size) * width;
    const size_t to = (size_t) position * width;
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
        out[to + i] = __float2bfloat16_rn(coil_load(cache + from + i));
    }
}

extern "C" __global__ void paged_kv_gather_f32(const float* cache, const int* table, int block_size, int width,
        __nv_bfloat16* out) {
    coil_paged_gather(cache, table, block_size, width, out);
}

extern "C" __global__ void paged_kv_gather_bf16(const __nv_bfloat16* cache, const int* table, int block_size,
        int width, __nv_bfloat16* out) {
    coil_paged_gather(cache, table, block_size, width, out);
}

// The same for several sequences at once: sequence z's rows 0 .. k_starts[z + 1] − k_starts[z] − 1,
// through its table at tables + table_starts[z], into rows k_starts[z] .. of out.
// Grid: (the most rows of a sequence, sequences); block: 128 threads over the row.
template <typename T>
static __device__ void coil_paged_gather_packed(const T* __restrict__ cache, const int* __restrict__ tables,
        const int* __restrict__ table_starts, const int* __restrict__ k_starts, int block_size, int width,
        __nv_bfloat16* __restrict__ out) {
    const int sequence = blockIdx.y;
    const int first = k_starts[sequence];
    if ((int) blockIdx.x < k_starts[sequence + 1] - first) {
        coil_paged_gather(cache, tables + table_starts[sequence], block_size, width, out + (size_t) first * width);
    }
}

extern "C" __global__ void paged_kv_gather_packed_f32(const float* cache, const int* tables, const int* table_starts,
        const int* k_starts, int block_size, int width, __nv_bfloat16* out) {
    coil_paged_gather_packed(cache, tables, table_starts, k_starts, block_size, width, out);
}

extern "C" __global__ void paged_kv_gather_packed_bf16(const __nv_bfloat16* cache, const int* tables,
        const int* table_starts, const int* k_starts, int block_size, int width, __nv_bfloat16* out) {
    coil_paged_gather_packed(cache, tables, table_starts, k_starts, block_size, width, out);
}
