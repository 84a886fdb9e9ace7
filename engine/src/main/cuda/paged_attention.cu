// Paged decode attention (flash-decoding): one query token per sequence against the keys and
// values its block table points at, split over the context so that long sequences fill the GPU,
// the splits merged by their log-sum-exp.
#include "common.cuh"

#define COIL_DECODE_WARPS 4
#define COIL_DECODE_THREADS (COIL_DECODE_WARPS * 32)

namespace coil_decode {

// 16 bytes of a cached row widened to floats: 8 bf16 (bf16 → f32 is a 16-bit shift) or 4 f32.
static __device__ __forceinline__ void widen(const uint4& raw, float (&values)[8]) {
    const unsigned words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        values[2 * i] = __uint_as_float(words[i] << 16);
        values[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    }
}

static __device__ __forceinline__ void widen(const uint4& raw, float (&values)[4]) {
    values[0] = __uint_as_float(raw.x);
    values[1] = __uint_as_float(raw.y);
    values[2] = __uint_as_float(raw.z);
    values[3] = __uint_as_float(raw.w);
}

// Maximum over the block; every thread gets it. scratch: 32 floats of its own.
static __device__ __forceinline__ float block_max(float value, float* scratch) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    value = coil_warp_max(value);
    if (lane == 0) {
        scratch[warp] = value;
    }
    __syncthreads();
    value = lane < (int) ((blockDim.x + 31) >> 5) ? scratch[lane] : -INFINITY;
    return coil_warp_max(value);
}

//   q: [batch, q_heads, HEAD_DIM] f32;  out: [batch, q_heads, HEAD_DIM] f32
//   key_cache, value_cache: [blocks, block_size, kv_heads, HEAD_DIM] of T (bf16 or f32)
//   block_tables: [batch, table_stride] int32; lengths: [batch] int32, the positions to attend to
//   (past + 1: the new token's own key and value are already stored)
//   partial_out: [batch, q_heads, splits, HEAD_DIM], partial_stats: [batch, q_heads, splits, 2]
//   (max, sum of 2^(score - max)), both unused when there is one split
// Grid: (kv_heads · head_groups, splits, batch). A block serves up to GROUP query heads of one kv
// head (each key row is read once for all of them) over positions split · partition onwards:
//   1. scores, in log2 units, into shared memory: the lanes of a key group each read 16 bytes of
//      the row, so a warp-wide load covers whole rows;
//   2. per head: the maximum, the exponentials in place and their sum;
//   3. P V: each lane sums its 16-byte slice over its keys, then lanes and warps are added up.
// Dynamic shared memory: GROUP · partition floats rounded up to 4, WARPS · GROUP · HEAD_DIM floats,
// partition + 2 ints.
template <typename T, int HEAD_DIM, int GROUP>
static __device__ __forceinline__ void decode(const float* __restrict__ q, const T* __restrict__ key_cache,
        const T* __restrict__ value_cache, const int* __restrict__ block_tables, int table_stride,
        const int* __restrict__ lengths, int block_size, int q_heads, int kv_heads, int partition, float scale_log2,
        float* __restrict__ partial_out, float* __restrict__ partial_stats, float* __restrict__ out) {
    constexpr int VECTOR = 16 / sizeof(T);
    constexpr int LANES_PER_KEY = HEAD_DIM / VECTOR;
    constexpr int KEYS_PER_WARP = 32 / LANES_PER_KEY;
    constexpr int KEYS_PER_STEP = COIL_DECODE_WARPS * KEYS_PER_WARP;
    // Rows each lane has in flight before it uses the first.
    constexpr int UNROLL = 8;
    static_assert(LANES_PER_KEY <= 32 && 32 % LANES_PER_KEY == 0, "a key row must split over lanes of one warp");
    static_assert(GROUP <= LANES_PER_KEY, "each head's score is stored by one lane of the key group");

    extern __shared__ float shared[];
    float* scores = shared;
    float* warp_sums = scores + ((GROUP * partition + 3) & ~3);  // 16-byte aligned for float4 stores
    int* table_slice = reinterpret_cast<int*>(warp_sums + COIL_DECODE_WARPS * GROUP * HEAD_DIM);
    __shared__ float head_max[GROUP];
    __shared__ float head_sum[GROUP];

    const int group_size = q_heads / kv_heads;
    const int head_groups = (group_size + GROUP - 1) / GROUP;
    const int kv_head = blockIdx.x / head_groups;
    const int first_in_group = (blockIdx.x % head_groups) * GROUP;
    const int heads = min(GROUP, group_size - first_in_group);
    const int split = blockIdx.y;
    const int splits = gridDim.y;
    const int sequence = blockIdx.z;
    const size_t head_row = (size_t) sequence * q_heads + kv_head * group_size + first_in_group;
    const int start = split * partition;
    // The lengths and block tables are step inputs, not made by the kernels before: they are read
    // before coil_grid_dependency_wait, and only q waits for the kernel before.
    const int count = min(lengths[sequence] - start, partition);

    if (count <= 0) {
        COIL_AFTER_PREVIOUS_KERNEL();
        // A split past the sequence's end (the launch covers the longest): the merge skips it.
        // Its partial output is zeroed too, so that the merge needs no branch.
        if (splits > 1) {
            if (threadIdx.x < heads) {
                float* stats = partial_stats + ((head_row + threadIdx.x) * splits + split) * 2;
                stats[0] = -INFINITY;
                stats[1] = 0.0f;
            }
            for (int i = threadIdx.x; i < heads * HEAD_DIM; i += COIL_DECODE_THREADS) {
                partial_out[((head_row + i / HEAD_DIM) * splits + split) * HEAD_DIM + i % HEAD_DIM] = 0.0f;
            }
        } else {
            for (int i = threadIdx.x; i < heads * HEAD_DIM; i += COIL_DECODE_THREADS) {
                out[head_row * HEAD_DIM + i] = 0.0f;
            }
        }
        return;
    }

    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int slice = lane % LANES_PER_KEY;
    const int slot = lane / LANES_PER_KEY;
    const int dim0 = slice * VECTOR;

    // The block-table entries of this split, staged in shared memory: the row addresses then
    // wait on one global load each, not two in a chain.
    const int first_block = start / block_size;
    const int* table = block_tables + (size_t) sequence * table_stride + first_block;
    for (int i = threadIdx.x; i <= (start + count - 1) / block_size - first_block; i += COIL_DECODE_THREADS) {
        table_slice[i] = table[i];
    }
    COIL_AFTER_PREVIOUS_KERNEL();

    float query[GROUP][VECTOR];
#pragma unroll
    for (int g = 0; g < GROUP; g++) {
#pragma unroll
        for (int e = 0; e < VECTOR; e += 4) {
            float4 four = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (g < heads) {
                four = *reinterpret_cast<const float4*>(q + (head_row + g) * HEAD_DIM + dim0 + e);
            }
            query[g][e] = four.x * scale_log2;
            query[g][e + 1] = four.y * scale_log2;
            query[g][e + 2] = four.z * scale_log2;
            query[g][e + 3] = four.w * scale_log2;
        }
    }

    __syncthreads();
    const size_t row_elements = (size_t) kv_heads * HEAD_DIM;
    const size_t head_offset = (size_t) kv_head * HEAD_DIM + dim0;

    // 1. Scores. The loop bound depends on the warp only, so every lane reaches the shuffles.
    for (int base = warp * KEYS_PER_WARP; base < count; base += KEYS_PER_STEP * UNROLL) {
        uint4 raw[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int j = base + u * KEYS_PER_STEP + slot;
            raw[u] = make_uint4(0u, 0u, 0u, 0u);
            if (j < count) {
                const int position = start + j;
                const size_t row = (size_t) table_slice[position / block_size - first_block] * block_size
                        + position % block_size;
                raw[u] = __ldg(reinterpret_cast<const uint4*>(key_cache + row * row_elements + head_offset));
            }
        }
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            float key[VECTOR];
            widen(raw[u], key);
            float dot[GROUP];
#pragma unroll
            for (int g = 0; g < GROUP; g++) {
                dot[g] = 0.0f;
#pragma unroll
                for (int e = 0; e < VECTOR; e++) {
                    dot[g] = fmaf(query[g][e], key[e], dot[g]);
                }
            }
#pragma unroll
            for (int offset = LANES_PER_KEY / 2; offset > 0; offset >>= 1) {
#pragma unroll
                for (int g = 0; g < GROUP; g++) {
                    dot[g] += __shfl_xor_sync(0xffffffffu, dot[g], offset);
                }
            }
            float mine = dot[0];
#pragma unroll
            for (int g = 1; g < GROUP; g++) {
                if (slice == g) {
                    mine = dot[g];
                }
            }
            const int j = base + u * KEYS_PER_STEP + slot;
            if (j < count && slice < heads) {
                scores[slice * partition + j] = mine;
            }
        }
    }
    __syncthreads();

    // 2. Softmax numerators of this split, with their maximum and sum.
    for (int g = warp; g < heads; g += COIL_DECODE_WARPS) {
        float* row = scores + g * partition;
        float maximum = -INFINITY;
        for (int j = lane; j < count; j += 32) {
            maximum = fmaxf(maximum, row[j]);
        }
        maximum = coil_warp_max(maximum);
        float sum = 0.0f;
        for (int j = lane; j < count; j += 32) {
            const float p = coil_exp2_approx(row[j] - maximum);
            row[j] = p;
            sum += p;
        }
        sum = coil_warp_sum(sum);
        if (lane == 0) {
            head_max[g] = maximum;
            head_sum[g] = sum;
        }
    }
    __syncthreads();

    // 3. P V over this split's keys.
    float accumulator[GROUP][VECTOR];
#pragma unroll
    for (int g = 0; g < GROUP; g++) {
#pragma unroll
        for (int e = 0; e < VECTOR; e++) {
            accumulator[g][e] = 0.0f;
        }
    }
    for (int base = warp * KEYS_PER_WARP; base < count; base += KEYS_PER_STEP * UNROLL) {
        uint4 raw[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int j = base + u * KEYS_PER_STEP + slot;
            raw[u] = make_uint4(0u, 0u, 0u, 0u);
            if (j < count) {
                const int position = start + j;
                const size_t row = (size_t) table_slice[position / block_size - first_block] * block_size
                        + position % block_size;
                raw[u] = __ldg(reinterpret_cast<const uint4*>(value_cache + row * row_elements + head_offset));
            }
        }
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int j = base + u * KEYS_PER_STEP + slot;
            float value[VECTOR];
            widen(raw[u], value);
#pragma unroll
            for (int g = 0; g < GROUP; g++) {
                const float p = (j < count && g < heads) ? scores[g * partition + j] : 0.0f;
#pragma unroll
                for (int e = 0; e < VECTOR; e++) {
                    accumulator[g][e] = fmaf(p, value[e], accumulator[g][e]);
                }
            }
        }
    }
    // Lanes one key group apart hold the same dimensions of different keys.
#pragma unroll
    for (int offset = LANES_PER_KEY; offset < 32; offset <<= 1) {
#pragma unroll
        for (int g = 0; g < GROUP; g++) {
#pragma unroll
            for (int e = 0; e < VECTOR; e++) {
                accumulator[g][e] += __shfl_xor_sync(0xffffffffu, accumulator[g][e], offset);
            }
        }
    }
    if (slot == 0) {
#pragma unroll
        for (int g = 0; g < GROUP; g++) {
            if (g < heads) {
#pragma unroll
                for (int e = 0; e < VECTOR; e += 4) {
                    *reinterpret_cast<float4*>(warp_sums + (warp * GROUP + g) * HEAD_DIM + dim0 + e) =
                            make_float4(accumulator[g][e], accumulator[g][e + 1], accumulator[g][e + 2],
                                    accumulator[g][e + 3]);
                }
            }
        }
    }
    __syncthreads();

    for (int i = threadIdx.x; i < heads * HEAD_DIM; i += COIL_DECODE_THREADS) {
        const int g = i / HEAD_DIM;
        const int d = i % HEAD_DIM;
        float total = 0.0f;
#pragma unroll
        for (int w = 0; w < COIL_DECODE_WARPS; w++) {
            total += warp_sums[(w * GROUP + g) * HEAD_DIM + d];
        }
        if (splits == 1) {
            out[(head_row + g) * HEAD_DIM + d] = total / head_sum[g];
        } else {
            partial_out[((head_row + g) * splits + split) * HEAD_DIM + d] = total;
        }
    }
    if (splits > 1 && threadIdx.x < heads) {
        float* stats = partial_stats + ((head_row + threadIdx.x) * splits + split) * 2;
        stats[0] = head_max[threadIdx.x];
        stats[1] = head_sum[threadIdx.x];
    }
}

}  // namespace coil_decode

// paged_attention_{bf16|f32}_d{HEAD_DIM}_g{GROUP}: PagedAttentionKernel picks GROUP, the fewest
// query heads of one kv head a block serves at once that covers the GQA ratio (at most 8).
#define COIL_PAGED_ATTENTION(NAME, T, HEAD_DIM, GROUP)                                                             \
    extern "C" __global__ void __launch_bounds__(COIL_DECODE_THREADS)                                              \
            paged_attention_##NAME##_d##HEAD_DIM##_g##GROUP(const float* q, const T* key_cache,                    \
                    const T* value_cache, const int* block_tables, int table_stride, const int* lengths,           \
                    int block_size, int q_heads, int kv_heads, int partition, float scale_log2, float* partial_out, \
                    float* partial_stats, float* out) {                                                            \
        coil_decode::decode<T, HEAD_DIM, GROUP>(q, key_cache, value_cache, block_tables, table_stride, lengths,    \
                block_size, q_heads, kv_heads, partition, scale_log2, partial_out, partial_stats, out);            \
    }

#define COIL_PAGED_ATTENTION_GROUPS(NAME, T, HEAD_DIM)                                                             \
    COIL_PAGED_ATTENTION(NAME, T, HEAD_DIM, 1)                                                                     \
    COIL_PAGED_ATTENTION(NAME, T, HEAD_DIM, 2)                                                                     \
    COIL_PAGED_ATTENTION(NAME, T, HEAD_DIM, 4)                                                                     \
    COIL_PAGED_ATTENTION(NAME, T, HEAD_DIM, 8)

COIL_PAGED_ATTENTION_GROUPS(bf16, __nv_bfloat16, 64)
COIL_PAGED_ATTENTION_GROUPS(bf16, __nv_bfloat16, 128)
COIL_PAGED_ATTENTION_GROUPS(f32, float, 64)
COIL_PAGED_ATTENTION_GROUPS(f32, float, 128)

// out[row] = Σ_s 2^(m_s − M) · partial_out[row, s] / Σ_s 2^(m_s − M) · l_s, M = max_s m_s, over the
// splits of one (sequence, query head) row; splits that held no keys have m_s = −inf, weight 0 and
// a zero partial output. Each thread adds 4 dims over every (threads · 4 / head_dim)-th split, so
// that many loads are in flight; the slices are then summed through shared memory.
// Grid: (batch · q_heads); block: COIL_DECODE_THREADS; dynamic shared memory: splits floats.
extern "C" __global__ void __launch_bounds__(COIL_DECODE_THREADS) paged_attention_merge(
        const float* __restrict__ partial_out, const float* __restrict__ partial_stats, float* __restrict__ out,
        int splits, int head_dim) {
    COIL_AFTER_PREVIOUS_KERNEL();
    extern __shared__ float weights[];
    __shared__ float max_scratch[32];
    __shared__ float sum_scratch[32];
    __shared__ __align__(16) float slices[COIL_DECODE_THREADS * 4];
    const size_t row = blockIdx.x;
    const float* stats = partial_stats + row * splits * 2;

    float maximum = -INFINITY;
    for (int s = threadIdx.x; s < splits; s += blockDim.x) {
        maximum = fmaxf(maximum, stats[2 * s]);
    }
    maximum = coil_decode::block_max(maximum, max_scratch);
    float sum = 0.0f;
    for (int s = threadIdx.x; s < splits; s += blockDim.x) {
        const float m = stats[2 * s];
        const float weight = m == -INFINITY ? 0.0f : coil_exp2_approx(m - maximum);
        weights[s] = weight;
        sum += weight * stats[2 * s + 1];
    }
    // The sum's barriers also publish the weights.
    sum = coil_block_sum(sum, sum_scratch);
    const float inverse = 1.0f / sum;

    const int threads_per_row = head_dim / 4;
    const int split_lanes = COIL_DECODE_THREADS / threads_per_row;
    const int dim = (threadIdx.x % threads_per_row) * 4;
    const int first_split = threadIdx.x / threads_per_row;
    const float* partial = partial_out + row * splits * head_dim + dim;
    float4 total = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 4
    for (int s = first_split; s < splits; s += split_lanes) {
        const float weight = weights[s];
        const float4 value = *reinterpret_cast<const float4*>(partial + (size_t) s * head_dim);
        total.x = fmaf(weight, value.x, total.x);
        total.y = fmaf(weight, value.y, total.y);
        total.z = fmaf(weight, value.z, total.z);
        total.w = fmaf(weight, value.w, total.w);
    }
    *reinterpret_cast<float4*>(slices + first_split * head_dim + dim) = total;
    __syncthreads();
    for (int d = threadIdx.x; d < head_dim; d += COIL_DECODE_THREADS) {
        float value = 0.0f;
        for (int lane = 0; lane < split_lanes; lane++) {
            value += slices[lane * head_dim + d];
        }
        out[row * head_dim + d] = value * inverse;
    }
}
