// A whole batch-1 decode step in one launch: one block per multiprocessor runs the step's phases
// (every projection, the Mamba state updates, the attention, lm_head and its argmax) in order,
// with a grid-wide barrier between phases instead of a kernel boundary. Opt-in
// (-Dcoil.cuda.persistentDecode=true): on an H100 it is exact against the launches but takes twice
// their time (docs/performance.md); each phase pays an L2 round trip for its operand, the grid
// barrier and its own products one after another, 6.5-7.5 µs against 3.7 µs a launch.
//
// Why: a decode step of a small model is a chain of ~150 dependent products, each reading a few MB
// of weights. Launched one by one, each launch can only start loading its weights once the launch
// before it is resident and nearly done, so the weights stream behind the chain instead of beside it.
// Here the weights do not depend on any phase: one warp of each block (the producer) copies the
// block's rows of every coming product into a ring of shared memory (cp.async.bulk, completion on
// an mbarrier per slot), as far ahead as the ring holds (COIL_PD_SLOTS · COIL_PD_SLOT_BYTES a
// block, ~23 MB over an H100), while the other eight warps (the consumers) wait at the barrier of
// the phase before. A phase then costs the barrier and its own arithmetic, and the weights of the
// whole step stream at the memory's rate.
//
// The step is a table of phases (CoilPhase: 48 longs each, written by PersistentDecode.java; the
// field numbers below are mirrored there):
//   GEMV      out = W · x for up to three (W, out) segments over one operand x (bf16 in shared
//             memory, made by every block from the phase's inputs, exactly as the few-rows product
//             gemv.cu makes it); W bf16 (n, k) row-major. Block b computes units
//             [U·b/G, U·(b+1)/G) of the U = Σ n columns. Optional epilogues: the MLP's
//             silu(gate) · up in bf16 (silu_pair = I: unit j is gate row j of W0 and up row j of
//             W1), and Mamba-2's causal conv update of the new token (as gemv.cu's).
//   SSM       the selective state update of every (head, row p) of the layer, gated by z
//             (as ssm_state_update_f32 with z).
//   ATTENTION RoPE on q and the new k, the new k and v into the paged cache, and paged decode
//             attention split over the context: block b serves (query head, split) items b, b + G, …
//             and writes their partial output and (max, sum) as paged_attention.cu's splits.
//   LM_HEAD   a GEMV whose blocks also keep the argmax of their columns; the last block to finish
//             picks the step's token (logits_argmax_f32's rule) and resets the step's counters.
// Operands (the GEMV's x): EMBED (the first block: v = E[id] · multiplier, written to h), RESIDUAL_NORM
// (v = a + b · multiplier, written to h_out by block 0; x = weight · v / rms(v)), GATED_NORM (x =
// weight · a / rms over each group; a = y · silu(z) already), BF16 (x = a), MERGE (the attention's
// splits merged by their log-sum-exp, as paged_attention_merge).
//
// Activations written by one block and read by another go through L2 (__ldcg): L1 is not coherent.
// Grid: the multiprocessor count (every block resident: the dynamic shared memory admits one block
// a multiprocessor, and the host checks the occupancy); block: COIL_PD_THREADS; dynamic shared
// memory: COIL_PD_DYNAMIC_BYTES. sync: two zeroed unsigned ints (the barrier count and the argmax
// ticket), zero again when the kernel ends. sm_90 only (the bulk copies and mbarrier transactions).
#include "common.cuh"

#define COIL_PD_WARPS 8
#define COIL_PD_CONSUMERS (COIL_PD_WARPS * 32)
#define COIL_PD_THREADS (COIL_PD_CONSUMERS + 32)
#define COIL_PD_SLOTS 8
#define COIL_PD_SLOT_BYTES (22 * 1024)
// Operands up to 2048 wide: a consumer thread holds 8 values of a normed row.
#define COIL_PD_MAX_K 2048
#define COIL_PD_CACHED (COIL_PD_MAX_K / COIL_PD_CONSUMERS)
#define COIL_PD_MAX_PARTITION 4096
#define COIL_PD_MAX_CONV 64
#define COIL_PD_MAX_ITEMS 512
#define COIL_PD_MAX_HEAD_DIM 128
#define COIL_PD_MAX_NORM_GROUPS 8
#define COIL_PD_DYNAMIC_BYTES (COIL_PD_SLOTS * COIL_PD_SLOT_BYTES + 2 * COIL_PD_MAX_K + 4 * COIL_PD_MAX_PARTITION)
#define COIL_PD_FIELDS 48

#define COIL_PD_GEMV 1
#define COIL_PD_SSM 2
#define COIL_PD_ATTENTION 3
#define COIL_PD_LM_HEAD 4

#define COIL_PD_EMBED 0
#define COIL_PD_RESIDUAL_NORM 1
#define COIL_PD_GATED_NORM 2
#define COIL_PD_BF16 3
#define COIL_PD_MERGE 4

// Fields of every phase.
#define F_KIND 0
// GEMV and LM_HEAD.
#define F_OPERAND 1
#define F_A 2
#define F_B 3
#define F_MULTIPLIER 4
#define F_H_OUT 5
#define F_NORM_WEIGHT 6
#define F_GROUP_SIZE 7
#define F_EPS 8
#define F_K 9
#define F_SEGMENTS 10
#define F_W0 11   // then OUT0, N0, W1, OUT1, N1, W2, OUT2, N2
#define F_SILU_PAIR 20
#define F_CONV_WEIGHT 21
#define F_CONV_BIAS 22
#define F_CONV_STATES 23
#define F_CONV_OUT 24
#define F_CONV_KERNEL 25
#define F_CONV_FIRST 26
#define F_CONV_CHANNELS 27
#define F_TOKENS 29
#define F_ARGMAX 30
#define F_MERGE_QUERY_HEADS 32
#define F_MERGE_HEAD_DIM 33
#define F_VOCAB 34
// The first phase also names the step's inputs, which every block reads once at its start.
#define F_STEP_SLOTS 35
#define F_STEP_LENGTHS 36
#define F_STEP_POSITIONS 37
#define F_STEP_CACHE_ROWS 38
// SSM.
#define F_SSM_X 2
#define F_SSM_B 3
#define F_SSM_C 4
#define F_SSM_DT 5
#define F_SSM_DT_BIAS 6
#define F_SSM_A 7
#define F_SSM_D 8
#define F_SSM_STATES 9
#define F_SSM_Y 11
#define F_SSM_Z 12
#define F_SSM_HEADS 13
#define F_SSM_HEAD_DIM 14
#define F_SSM_GROUPS 15
#define F_SSM_STATE 16
// ATTENTION.
#define F_AT_Q 2
#define F_AT_K 3
#define F_AT_V 4
#define F_AT_KEYS 5
#define F_AT_VALUES 6
#define F_AT_BF16 7
#define F_AT_QUERY_HEADS 8
#define F_AT_KV_HEADS 9
#define F_AT_HEAD_DIM 10
#define F_AT_PADDED 11
#define F_AT_ROTARY 12
#define F_AT_THETA 13
#define F_AT_TABLE 16
#define F_AT_BLOCK_SIZE 18
#define F_AT_SCALE_LOG2 19
#define F_AT_PARTIAL_OUT 20
#define F_AT_PARTIAL_STATS 21

struct CoilPhase {
    long long f[COIL_PD_FIELDS];
};

// Spins before a wait is taken for a hang (a bug, never a slow step): the kernel traps instead of
// holding the GPU forever.
#define COIL_PD_SPIN_LIMIT (1LL << 24)

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

#include "persistent_sync.cuh"

namespace coil_pd {

// A phase's fields: the producer reads them in global memory, the consumers in their copy in
// shared memory (loaded a phase ahead: a field read after the barrier costs no round trip).
template <typename T>
static __device__ __forceinline__ T field(const long long* phase, int index) {
    return (T) phase[index];
}

template <typename T>
static __device__ __forceinline__ T* pointer(const long long* phase, int index) {
    return reinterpret_cast<T*>(phase[index]);
}

static __device__ __forceinline__ float real(const long long* phase, int index) {
    return __int_as_float((int) phase[index]);
}

// Whether a phase reads weights through the ring.
static __device__ __forceinline__ bool has_weights(int kind) {
    return kind == COIL_PD_GEMV || kind == COIL_PD_LM_HEAD;
}

// This block's share [first, end) of `total` units split evenly over the grid.
static __device__ __forceinline__ void share(int total, int& first, int& end) {
    first = (int) ((long long) total * blockIdx.x / gridDim.x);
    end = (int) ((long long) total * (blockIdx.x + 1) / gridDim.x);
}

// The block's units of a GEMV phase: [first, end), and how many fit one slot.
struct Units {
    int first;
    int end;
    int per_piece;
    int total;
};

static __device__ __forceinline__ Units units_of(const long long* phase, int slot_bytes = COIL_PD_SLOT_BYTES) {
    const int k = field<int>(phase, F_K);
    const int pair = field<int>(phase, F_SILU_PAIR);
    int total = pair;
    if (pair == 0) {
        total = 0;
        const int segments = field<int>(phase, F_SEGMENTS);
        for (int s = 0; s < segments; s++) {
            total += field<int>(phase, F_W0 + 3 * s + 2);
        }
    }
    Units units;
    units.total = total;
    share(total, units.first, units.end);
    const int row_bytes = 2 * k;
    units.per_piece = max(1, slot_bytes / (row_bytes * (pair > 0 ? 2 : 1)));
    return units;
}

// Where unit u's weight row lies: segment s, column within it.
static __device__ __forceinline__ void locate(const long long* phase, int unit, int& segment, int& column) {
    segment = 0;
    column = unit;
    const int segments = field<int>(phase, F_SEGMENTS);
    for (int s = 0; s + 1 < segments; s++) {
        const int n = field<int>(phase, F_W0 + 3 * s + 2);
        if (column < n) {
            break;
        }
        column -= n;
        segment = s + 1;
    }
}

// The producer: every weight row of the block's units of every phase, in order, into the ring.
static __device__ __forceinline__ void produce(const CoilPhase* phases, int count, unsigned char* ring, uint64_t* full,
        uint64_t* empty, int slots, int slot_bytes, unsigned long long* trace) {
    int piece = 0;
    for (int p = 0; p < count; p++) {
        const long long* phase = phases[p].f;
        if (!has_weights(field<int>(phase, F_KIND))) {
            continue;
        }
        const Units units = units_of(phase, slot_bytes);
        const int k = field<int>(phase, F_K);
        const int pair = field<int>(phase, F_SILU_PAIR);
        const size_t row_bytes = 2 * (size_t) k;
        for (int u0 = units.first; u0 < units.end; u0 += units.per_piece, piece++) {
            const int u1 = min(u0 + units.per_piece, units.end);
            const int slot = piece % slots;
            const int round = piece / slots;
            if (round > 0) {
                coil_mbarrier_wait(&empty[slot], (round - 1) & 1, COIL_PD_SPIN_LIMIT);
            }
            if (trace != nullptr && blockIdx.x == 0 && u0 == units.first) {
                trace[p * 6 + 5] = now();
            }
            unsigned char* target = ring + (size_t) slot * slot_bytes;
            const unsigned rows = u1 - u0;
            if (pair > 0) {
                const unsigned bytes = (unsigned) (rows * row_bytes);
                coil_mbarrier_expect(&full[slot], 2 * bytes);
                coil_bulk_copy(target, pointer<const unsigned char>(phase, F_W0) + (size_t) u0 * row_bytes, bytes,
                        &full[slot]);
                coil_bulk_copy(target + bytes, pointer<const unsigned char>(phase, F_W0 + 3) + (size_t) u0 * row_bytes,
                        bytes, &full[slot]);
            } else {
                coil_mbarrier_expect(&full[slot], (unsigned) (rows * row_bytes));
                // One copy per segment the piece's rows fall in.
                int unit = u0;
                size_t offset = 0;
                while (unit < u1) {
                    int segment, column;
                    locate(phase, unit, segment, column);
                    const int n = field<int>(phase, F_W0 + 3 * segment + 2);
                    const int take = min(u1 - unit, n - column);
                    const unsigned bytes = (unsigned) (take * row_bytes);
                    coil_bulk_copy(target + offset,
                            pointer<const unsigned char>(phase, F_W0 + 3 * segment) + (size_t) column * row_bytes,
                            bytes, &full[slot]);
                    offset += bytes;
                    unit += take;
                }
            }
        }
    }
}

// Shared state of the consumers.
struct Shared {
    float scratch[32];
    // The conv channels' history and weights, copied in while the block waits at the barrier.
    float conv_history[COIL_PD_MAX_CONV][4];
    float conv_weight[COIL_PD_MAX_CONV][5];
    float conv_bias[COIL_PD_MAX_CONV];
    double sines[COIL_PD_MAX_HEAD_DIM / 2];
    double cosines[COIL_PD_MAX_HEAD_DIM / 2];
    float query[COIL_PD_MAX_HEAD_DIM];
    float new_key[COIL_PD_MAX_HEAD_DIM];
    float new_value[COIL_PD_MAX_HEAD_DIM];
    float merge_weight[COIL_PD_MAX_ITEMS];
    float merge_sum[COIL_PD_MAX_ITEMS];
    float merge_inverse[64];
    float head_max;
    float head_sum;
    float best_value[COIL_PD_WARPS];
    int best_id[COIL_PD_WARPS];
    int bad;
    int last;
};

// What a phase reads before its barrier and keeps in registers: the norm's weights of the
// thread's operand elements, the decode slot, and the state update's constants of its first rows.
struct Early {
    float weight[COIL_PD_CACHED];
    float4 held[2][2];
    float bias[2];
    float decay[2];
    float skip[2];
};

// The step's inputs (one sequence), read once at the kernel's start.
struct StepInputs {
    int slot;
    int length;
    int position;
    int cache_row;
};

// A 4-byte copy from global into shared memory that does not hold the thread (cp.async, sm_80+);
// cp.async.wait_all before the value is read.
static __device__ __forceinline__ void copy_async(float* target, const float* source) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(coil_shared_address(target)), "l"(source) : "memory");
}

// How the attention splits a context of `length` positions over the grid (ATTENTION and MERGE agree).
static __device__ __forceinline__ int splits_for(int length, int query_heads) {
    const int most = max(1, (int) gridDim.x / query_heads);
    return max(1, min((length + 15) / 16, most));
}

// x (k values, bf16, shared memory) from the phase's operand. Every consumer thread takes part.
static __device__ __forceinline__ void make_operand(const long long* phase, __nv_bfloat16* x, const StepInputs& in, const Early& early,
        Shared& s) {
    const int operand = field<int>(phase, F_OPERAND);
    const int k = field<int>(phase, F_K);
    const int t = threadIdx.x;
    if (operand == COIL_PD_BF16) {
        const uint4* source = pointer<const uint4>(phase, F_A);
        uint4* target = reinterpret_cast<uint4*>(x);
        for (int c = t; c < k / 8; c += COIL_PD_CONSUMERS) {
            target[c] = __ldcg(source + c);
        }
    } else if (operand == COIL_PD_MERGE) {
        const float* partial_out = pointer<const float>(phase, F_A);
        const float* partial_stats = pointer<const float>(phase, F_B);
        const int query_heads = field<int>(phase, F_MERGE_QUERY_HEADS);
        const int head_dim = field<int>(phase, F_MERGE_HEAD_DIM);
        const int length = in.length;
        const int splits = splits_for(length, query_heads);
        // Every split's (max, sum) at once into shared memory, then per head the splits' weights
        // 2^(m_s − M) and 1 / Σ weight · l_s.
        for (int i = t; i < query_heads * splits; i += COIL_PD_CONSUMERS) {
            const float2 stats = __ldcg(reinterpret_cast<const float2*>(partial_stats) + i);
            s.merge_weight[i] = stats.x;
            s.merge_sum[i] = stats.y;
        }
        consumers_sync();
        for (int h = t; h < query_heads; h += COIL_PD_CONSUMERS) {
            float maximum = -INFINITY;
            for (int split = 0; split < splits; split++) {
                maximum = fmaxf(maximum, s.merge_weight[h * splits + split]);
            }
            float sum = 0.0f;
            for (int split = 0; split < splits; split++) {
                const float m = s.merge_weight[h * splits + split];
                const float weight = m == -INFINITY ? 0.0f : coil_exp2_approx(m - maximum);
                s.merge_weight[h * splits + split] = weight;
                sum += weight * s.merge_sum[h * splits + split];
            }
            s.merge_inverse[h] = 1.0f / sum;
        }
        consumers_sync();
        for (int e = t; e < k; e += COIL_PD_CONSUMERS) {
            const int h = e / head_dim;
            const int d = e - h * head_dim;
            float total = 0.0f;
#pragma unroll 4
            for (int split = 0; split < splits; split++) {
                total = fmaf(s.merge_weight[h * splits + split],
                        __ldcg(partial_out + ((size_t) h * splits + split) * head_dim + d), total);
            }
            x[e] = __float2bfloat16_rn(total * s.merge_inverse[h]);
        }
    } else {
        // A normed operand: the values v, their squares per group, then weight · v / rms.
        const float* a = pointer<const float>(phase, F_A);
        const float* b = pointer<const float>(phase, F_B);
        const float multiplier = real(phase, F_MULTIPLIER);
        float* h_out = pointer<float>(phase, F_H_OUT);
        const int group_size = field<int>(phase, F_GROUP_SIZE);
        const float eps = real(phase, F_EPS);
        int id = 0;
        bool valid = true;
        if (operand == COIL_PD_EMBED) {
            id = __ldcg(reinterpret_cast<const int*>(b));
            valid = id >= 0 && id < field<int>(phase, F_VOCAB);
        }
        float values[COIL_PD_CACHED];
#pragma unroll
        for (int j = 0; j < COIL_PD_CACHED; j++) {
            const int i = t + j * COIL_PD_CONSUMERS;
            float v = 0.0f;
            if (i < k) {
                if (operand == COIL_PD_EMBED) {
                    const __nv_bfloat16* table = reinterpret_cast<const __nv_bfloat16*>(a);
                    v = valid ? __bfloat162float(table[(size_t) id * k + i]) : __int_as_float(0x7fc00000);
                    v = multiplier == 1.0f ? v : __fmul_rn(v, multiplier);
                } else if (operand == COIL_PD_RESIDUAL_NORM) {
                    v = b == nullptr ? __ldcg(a + i) : __fadd_rn(__ldcg(a + i), __fmul_rn(__ldcg(b + i), multiplier));
                } else {
                    v = __ldcg(a + i);
                }
            }
            values[j] = v;
        }
        // Each element's group, then each group's 1 / rms, all in registers (at most
        // COIL_PD_MAX_NORM_GROUPS groups).
        const int groups = k / group_size;
        int group_of[COIL_PD_CACHED];
#pragma unroll
        for (int j = 0; j < COIL_PD_CACHED; j++) {
            group_of[j] = (t + j * COIL_PD_CONSUMERS) / group_size;
        }
        float scale[COIL_PD_CACHED];
#pragma unroll
        for (int g = 0; g < COIL_PD_MAX_NORM_GROUPS; g++) {
            if (g < groups) {
                float squares = 0.0f;
#pragma unroll
                for (int j = 0; j < COIL_PD_CACHED; j++) {
                    const int i = t + j * COIL_PD_CONSUMERS;
                    if (i < k && group_of[j] == g) {
                        squares = fmaf(values[j], values[j], squares);
                    }
                }
                squares = consumers_sum(squares, s.scratch);
                const float inverse = 1.0f / sqrtf(squares / group_size + eps);
#pragma unroll
                for (int j = 0; j < COIL_PD_CACHED; j++) {
                    if (group_of[j] == g) {
                        scale[j] = inverse;
                    }
                }
            }
        }
        const bool writes_h = h_out != nullptr && blockIdx.x == 0;
#pragma unroll
        for (int j = 0; j < COIL_PD_CACHED; j++) {
            const int i = t + j * COIL_PD_CONSUMERS;
            if (i < k) {
                x[i] = __float2bfloat16_rn(early.weight[j] * (values[j] * scale[j]));
                if (writes_h) {
                    h_out[i] = values[j];
                }
            }
        }
    }
    // The conv histories and weights copied in before the barrier (in_proj) have landed.
    asm volatile("cp.async.wait_all;" ::: "memory");
    consumers_sync();
}

// Four rows' Σ_k w[k] · x[k] at once (independent chains, one reduction pass): each lane strides over
// 16-byte chunks and the warp's lanes are summed by xor shuffles (every lane gets the totals).
static __device__ __forceinline__ void row_dots(const unsigned char* const (&rows)[4], const __nv_bfloat16* x, int k,
        float (&sums)[4]) {
    const int lane = threadIdx.x & 31;
    const uint4* x4 = reinterpret_cast<const uint4*>(x);
#pragma unroll
    for (int r = 0; r < 4; r++) {
        sums[r] = 0.0f;
    }
    for (int c = lane; c < k / 8; c += 32) {
        const uint4 v = x4[c];
        const unsigned vs[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int r = 0; r < 4; r++) {
            const uint4 w = reinterpret_cast<const uint4*>(rows[r])[c];
            const unsigned ws[4] = {w.x, w.y, w.z, w.w};
            float sum = sums[r];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                sum = fmaf(__uint_as_float(ws[j] << 16), __uint_as_float(vs[j] << 16), sum);
                sum = fmaf(__uint_as_float(ws[j] & 0xffff0000u), __uint_as_float(vs[j] & 0xffff0000u), sum);
            }
            sums[r] = sum;
        }
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
#pragma unroll
        for (int r = 0; r < 4; r++) {
            sums[r] += __shfl_xor_sync(0xffffffffu, sums[r], offset);
        }
    }
}

// The better of two argmax candidates: the larger value, the lower id on ties.
static __device__ __forceinline__ void better(float& value, int& id, float other_value, int other_id) {
    if (other_value > value || (other_value == value && other_id < id)) {
        value = other_value;
        id = other_id;
    }
}

// Before the phase's barrier: what does not depend on the phases before (conv histories, RoPE turns).
static __device__ __forceinline__ void before_wait(const long long* phase, const StepInputs& in, Early& early, Shared& s) {
    const int kind = field<int>(phase, F_KIND);
    const int t = threadIdx.x;
    if ((kind == COIL_PD_GEMV || kind == COIL_PD_LM_HEAD) && field<int>(phase, F_OPERAND) != COIL_PD_BF16
            && field<int>(phase, F_OPERAND) != COIL_PD_MERGE) {
        const float* weight = pointer<const float>(phase, F_NORM_WEIGHT);
        const int k = field<int>(phase, F_K);
#pragma unroll
        for (int j = 0; j < COIL_PD_CACHED; j++) {
            const int i = t + j * COIL_PD_CONSUMERS;
            early.weight[j] = i < k ? __ldg(weight + i) : 0.0f;
        }
    }
    if (kind == COIL_PD_GEMV && field<long long>(phase, F_CONV_STATES) != 0) {
        const Units units = units_of(phase);
        const int first = field<int>(phase, F_CONV_FIRST);
        const int channels = field<int>(phase, F_CONV_CHANNELS);
        const int c0 = max(units.first - first, 0);
        const int c1 = min(units.end - first, channels);
        const int kernel = field<int>(phase, F_CONV_KERNEL);
        const int history = kernel - 1;
        const float* weight = pointer<const float>(phase, F_CONV_WEIGHT);
        const float* bias = pointer<const float>(phase, F_CONV_BIAS);
        const float* states = pointer<const float>(phase, F_CONV_STATES);
        const int slot = in.slot;
        for (int c = c0 + t; c < c1; c += COIL_PD_CONSUMERS) {
            const float* column = states + (size_t) slot * history * channels + c;
            for (int j = 0; j < history; j++) {
                copy_async(&s.conv_history[c - c0][j], column + (size_t) j * channels);
            }
            for (int j = 0; j < kernel; j++) {
                copy_async(&s.conv_weight[c - c0][j], weight + c * kernel + j);
            }
            if (bias != nullptr) {
                copy_async(&s.conv_bias[c - c0], bias + c);
            } else {
                s.conv_bias[c - c0] = 0.0f;
            }
        }
        asm volatile("cp.async.commit_group;" ::: "memory");
    } else if (kind == COIL_PD_ATTENTION) {
        const int rotary = field<int>(phase, F_AT_ROTARY);
        if (rotary > 0) {
            const float position = (float) in.position;
            const float theta = real(phase, F_AT_THETA);
            for (int i = t; i < rotary / 2; i += COIL_PD_CONSUMERS) {
                coil_rope_turn(position, i, rotary, theta, s.sines[i], s.cosines[i]);
            }
        }
    }
}

// A GEMV phase's products, from the ring (pieces counted across phases in `piece`).
static __device__ __forceinline__ void gemv(const long long* phase, const __nv_bfloat16* x, unsigned char* ring, uint64_t* full,
        uint64_t* empty, int& piece, int slots, int slot_bytes, const StepInputs& in, Shared& s) {
    const Units units = units_of(phase, slot_bytes);
    const int k = field<int>(phase, F_K);
    const int pair = field<int>(phase, F_SILU_PAIR);
    const bool lm_head = field<int>(phase, F_KIND) == COIL_PD_LM_HEAD;
    const bool conv = field<long long>(phase, F_CONV_STATES) != 0;
    const int conv_first = field<int>(phase, F_CONV_FIRST);
    const int conv_channels = field<int>(phase, F_CONV_CHANNELS);
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const size_t row_bytes = 2 * (size_t) k;
    float best = -INFINITY;
    int best_id = 0x7fffffff;
    bool bad = false;
    for (int u0 = units.first; u0 < units.end; u0 += units.per_piece, piece++) {
        const int u1 = min(u0 + units.per_piece, units.end);
        const int slot = piece % slots;
        coil_mbarrier_wait(&full[slot], (piece / slots) & 1, COIL_PD_SPIN_LIMIT);
        const unsigned char* rows = ring + (size_t) slot * slot_bytes;
        const int count = u1 - u0;
        if (pair > 0) {
            // Two units (four rows) a warp at once.
            for (int i = warp; i < count; i += 2 * COIL_PD_WARPS) {
                const int second = i + COIL_PD_WARPS < count ? i + COIL_PD_WARPS : i;
                const unsigned char* four[4] = {rows + i * row_bytes, rows + (count + i) * row_bytes,
                        rows + second * row_bytes, rows + (count + second) * row_bytes};
                float sums[4];
                row_dots(four, x, k, sums);
                if (lane == 0) {
                    __nv_bfloat16* hidden = pointer<__nv_bfloat16>(phase, F_W0 + 1);
                    hidden[u0 + i] = __float2bfloat16_rn(coil_silu_product(sums[0], sums[1]));
                    hidden[u0 + second] = __float2bfloat16_rn(coil_silu_product(sums[2], sums[3]));
                }
            }
        }
        // Four rows a warp at once: rows i, i + 8, i + 16, i + 24 of the piece.
        for (int i0 = warp; pair == 0 && i0 < count; i0 += 4 * COIL_PD_WARPS) {
            const unsigned char* four[4];
#pragma unroll
            for (int r = 0; r < 4; r++) {
                const int i = i0 + r * COIL_PD_WARPS < count ? i0 + r * COIL_PD_WARPS : i0;
                four[r] = rows + i * row_bytes;
            }
            float sums[4];
            row_dots(four, x, k, sums);
#pragma unroll
            for (int r = 0; r < 4; r++) {
            const int i = i0 + r * COIL_PD_WARPS;
            if (i >= count) {
                break;
            }
            const int unit = u0 + i;
            const float total = sums[r];
            int segment, column;
            locate(phase, unit, segment, column);
            if (lane == 0) {
                pointer<float>(phase, F_W0 + 3 * segment + 1)[column] = total;
                if (lm_head) {
                    bad |= isnan(total) || total == INFINITY;
                    better(best, best_id, total, column);
                }
                const int channel = unit - conv_first;
                if (conv && channel >= 0 && channel < conv_channels) {
                    // The new token's conv of this channel, and the channel's history shifted by it.
                    const int c = channel - max(units.first - conv_first, 0);
                    const int history = field<int>(phase, F_CONV_KERNEL) - 1;
                    float* state = pointer<float>(phase, F_CONV_STATES) + (size_t) in.slot * history * conv_channels
                            + channel;
                    float sum = s.conv_bias[c];
                    for (int j = 0; j < history; j++) {
                        sum = fmaf(s.conv_weight[c][j], s.conv_history[c][j], sum);
                    }
                    sum = fmaf(s.conv_weight[c][history], total, sum);
                    for (int j = 0; j + 1 < history; j++) {
                        state[(size_t) j * conv_channels] = s.conv_history[c][j + 1];
                    }
                    if (history > 0) {
                        state[(size_t) (history - 1) * conv_channels] = total;
                    }
                    pointer<float>(phase, F_CONV_OUT)[channel] = coil_silu(sum);
                }
            }
            }
        }
        __syncwarp();
        if (lane == 0) {
            coil_mbarrier_arrive(&empty[slot]);
        }
    }
    if (lm_head) {
        if (lane == 0) {
            s.best_value[warp] = best;
            s.best_id[warp] = best_id;
            if (bad) {
                atomicOr(&s.bad, 1);
            }
        }
        consumers_sync();
        if (threadIdx.x == 0) {
            float value = s.best_value[0];
            int id = s.best_id[0];
            for (int w = 1; w < COIL_PD_WARPS; w++) {
                better(value, id, s.best_value[w], s.best_id[w]);
            }
            int* partial = pointer<int>(phase, F_ARGMAX) + 3 * blockIdx.x;
            partial[0] = __float_as_int(value);
            partial[1] = id;
            partial[2] = s.bad;
        }
    }
}

// The Mamba-2 state update of the block's (head, p) rows, as ssm_state_update_f32 with z.
// A state update phase's (head, p) rows and this block's share of them; a warp takes rows
// first + warp, first + warp + COIL_PD_WARPS, …
struct SsmRows {
    int heads;
    int head_dim;
    int state_size;
    int total;
    int first;
    int end;
};

static __device__ __forceinline__ SsmRows ssm_rows(const long long* phase) {
    SsmRows rows;
    rows.heads = field<int>(phase, F_SSM_HEADS);
    rows.head_dim = field<int>(phase, F_SSM_HEAD_DIM);
    rows.state_size = field<int>(phase, F_SSM_STATE);
    rows.total = rows.heads * rows.head_dim;
    share(rows.total, rows.first, rows.end);
    return rows;
}

static __device__ __forceinline__ void ssm(const long long* phase, const StepInputs& in, const Early& early) {
    const SsmRows rows = ssm_rows(phase);
    const int heads = rows.heads;
    const int head_dim = rows.head_dim;
    const int groups = field<int>(phase, F_SSM_GROUPS);
    const int state_size = rows.state_size;
    const int first = rows.first;
    const int end = rows.end;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int slot = in.slot;
    const float* x = pointer<const float>(phase, F_SSM_X);
    const float* dt = pointer<const float>(phase, F_SSM_DT);
    const float* z = pointer<const float>(phase, F_SSM_Z);
    float* states = pointer<float>(phase, F_SSM_STATES);
    float* y = pointer<float>(phase, F_SSM_Y);
    int nth = 0;
    for (int unit = first + warp; unit < end; unit += COIL_PD_WARPS, nth++) {
        const int h = unit / head_dim;
        const int p = unit - h * head_dim;
        const int g = h / (heads / groups);
        const float4* b4 = reinterpret_cast<const float4*>(pointer<const float>(phase, F_SSM_B) + (size_t) g * state_size);
        const float4* c4 = reinterpret_cast<const float4*>(pointer<const float>(phase, F_SSM_C) + (size_t) g * state_size);
        float4* row4 = reinterpret_cast<float4*>(states + (((size_t) slot * heads + h) * head_dim + p) * state_size);
        const float dt_value = __ldcg(dt + h);
        const float x_value = __ldcg(x + unit);
        const float z_value = __ldcg(z + unit);
        // Rows 0 and 1 of the warp had their constants and state read before the barrier
        // (selected, not indexed, so that they stay in registers).
        const bool kept = nth < 2;
        const bool second = nth == 1;
        const float bias = !kept ? __ldg(pointer<const float>(phase, F_SSM_DT_BIAS) + h)
                : second ? early.bias[1] : early.bias[0];
        const float a_value = !kept ? __ldg(pointer<const float>(phase, F_SSM_A) + h)
                : second ? early.decay[1] : early.decay[0];
        const float d_value = !kept ? __ldg(pointer<const float>(phase, F_SSM_D) + h)
                : second ? early.skip[1] : early.skip[0];
        float step = dt_value + bias;
        step = coil_softplus(step);
        const float decay = expf(step * a_value);
        const float input = step * x_value;
        float sum = 0.0f;
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const int n = lane + 32 * i;
            if (n >= (state_size >> 2)) {
                break;
            }
            const float4 st = !kept ? __ldcg(row4 + n) : second ? early.held[1][i] : early.held[0][i];
            row4[n] = coil_ssm_columns(st, decay, input, __ldcg(b4 + n), __ldcg(c4 + n), sum);
        }
        sum = coil_warp_sum(sum);
        if (lane == 0) {
            const float out = fmaf(d_value, x_value, sum);
            y[unit] = coil_gated(out, z_value);
        }
    }
}

// The first two state rows of each warp, read before the barrier (only this phase writes them).
static __device__ __forceinline__ void ssm_prefetch(const long long* phase, const StepInputs& in, Early& early) {
    const SsmRows rows = ssm_rows(phase);
    const int head_dim = rows.head_dim;
    const int state_size = rows.state_size;
    const int total = rows.total;
    const int first = rows.first;
    const int end = rows.end;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int slot = in.slot;
    const float* states = pointer<const float>(phase, F_SSM_STATES);
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int unit = first + warp + r * COIL_PD_WARPS;
        const int h = min(unit, total - 1) / head_dim;
        early.bias[r] = __ldg(pointer<const float>(phase, F_SSM_DT_BIAS) + h);
        early.decay[r] = __ldg(pointer<const float>(phase, F_SSM_A) + h);
        early.skip[r] = __ldg(pointer<const float>(phase, F_SSM_D) + h);
#pragma unroll
        for (int i = 0; i < 2; i++) {
            early.held[r][i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            const int n = lane + 32 * i;
            if (unit < end && n < (state_size >> 2)) {
                early.held[r][i] = __ldcg(
                        reinterpret_cast<const float4*>(states + ((size_t) slot * total + unit) * state_size) + n);
            }
        }
    }
}

// One cached key or value element of head `head` at cache row `row`.
static __device__ __forceinline__ float cached(const void* cache, bool bf16, size_t index) {
    return bf16 ? __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(cache)[index])
                : reinterpret_cast<const float*>(cache)[index];
}

static __device__ __forceinline__ float rounded(float value, bool bf16) {
    return bf16 ? __bfloat162float(__float2bfloat16_rn(value)) : value;
}

// The RoPE'd row of one head (head_dim values of source) into target (shared memory), times scale.
static __device__ __forceinline__ void turned(const float* source, float* target, int head_dim, int rotary,
        float scale, bool round_bf16, Shared& s) {
    const int half = rotary / 2;
    for (int d = threadIdx.x; d < head_dim; d += COIL_PD_CONSUMERS) {
        float value = __ldcg(source + d);
        if (d < rotary) {
            const int i = d < half ? d : d - half;
            const double x1 = __ldcg(source + i);
            const double x2 = __ldcg(source + i + half);
            value = d < half ? (float) __dsub_rn(__dmul_rn(x1, s.cosines[i]), __dmul_rn(x2, s.sines[i]))
                             : (float) __dadd_rn(__dmul_rn(x2, s.cosines[i]), __dmul_rn(x1, s.sines[i]));
        }
        target[d] = round_bf16 ? rounded(value, true) : value * scale;
    }
}

// The attention items of this block: (query head, split) pairs b, b + G, …
static __device__ __forceinline__ void attention(const long long* phase, const StepInputs& in, float* scores, Shared& s) {
    const int query_heads = field<int>(phase, F_AT_QUERY_HEADS);
    const int kv_heads = field<int>(phase, F_AT_KV_HEADS);
    const int head_dim = field<int>(phase, F_AT_HEAD_DIM);
    const int padded = field<int>(phase, F_AT_PADDED);
    const int rotary = field<int>(phase, F_AT_ROTARY);
    const bool bf16 = field<int>(phase, F_AT_BF16) != 0;
    const int block_size = field<int>(phase, F_AT_BLOCK_SIZE);
    const float scale_log2 = real(phase, F_AT_SCALE_LOG2);
    const int length = in.length;
    const int newest = length - 1;
    const int* table = pointer<const int>(phase, F_AT_TABLE);
    void* keys = pointer<void>(phase, F_AT_KEYS);
    void* values = pointer<void>(phase, F_AT_VALUES);
    const int splits = splits_for(length, query_heads);
    const int partition = (length + splits - 1) / splits;
    const int group = query_heads / kv_heads;
    const int t = threadIdx.x;
    const int lane = t & 31;
    const int warp = t >> 5;
    for (int item = blockIdx.x; item < query_heads * splits; item += gridDim.x) {
        const int h = item / splits;
        const int split = item - h * splits;
        const int kv_head = h / group;
        const int start = split * partition;
        const int count = min(length - start, partition);
        const bool has_newest = newest >= start && newest < start + count;
        turned(pointer<const float>(phase, F_AT_Q) + (size_t) h * head_dim, s.query, head_dim, rotary, scale_log2,
                false, s);
        if (has_newest) {
            // The new key as the cache holds it (turned, rounded to the cache's type), and its value.
            turned(pointer<const float>(phase, F_AT_K) + (size_t) kv_head * head_dim, s.new_key, head_dim, rotary,
                    1.0f, bf16, s);
            for (int d = t; d < head_dim; d += COIL_PD_CONSUMERS) {
                s.new_value[d] = rounded(__ldcg(pointer<const float>(phase, F_AT_V) + (size_t) kv_head * head_dim + d),
                        bf16);
            }
        }
        consumers_sync();
        if (has_newest && h % group == 0) {
            // This item writes the new row of its kv head, zero past head_dim.
            const size_t row = (size_t) in.cache_row;
            const size_t base = (row * kv_heads + kv_head) * padded;
            for (int d = t; d < padded; d += COIL_PD_CONSUMERS) {
                const float key = d < head_dim ? s.new_key[d] : 0.0f;
                const float value = d < head_dim ? s.new_value[d] : 0.0f;
                if (bf16) {
                    reinterpret_cast<__nv_bfloat16*>(keys)[base + d] = __float2bfloat16_rn(key);
                    reinterpret_cast<__nv_bfloat16*>(values)[base + d] = __float2bfloat16_rn(value);
                } else {
                    reinterpret_cast<float*>(keys)[base + d] = key;
                    reinterpret_cast<float*>(values)[base + d] = value;
                }
            }
        }
        // 1. Scores in log2 units, a warp a key, four keys in flight.
        for (int j0 = warp * 4; j0 < count; j0 += COIL_PD_WARPS * 4) {
            float dots[4];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const int j = j0 + u;
                float dot = 0.0f;
                if (j < count) {
                    const int position = start + j;
                    if (position == newest) {
                        for (int d = lane; d < head_dim; d += 32) {
                            dot = fmaf(s.query[d], s.new_key[d], dot);
                        }
                    } else {
                        const size_t row = (size_t) __ldg(table + position / block_size) * block_size
                                + position % block_size;
                        const size_t base = (row * kv_heads + kv_head) * padded;
                        for (int d = lane; d < head_dim; d += 32) {
                            dot = fmaf(s.query[d], cached(keys, bf16, base + d), dot);
                        }
                    }
                }
                dots[u] = dot;
            }
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const float dot = coil_warp_sum(dots[u]);
                if (lane == 0 && j0 + u < count) {
                    scores[j0 + u] = dot;
                }
            }
        }
        consumers_sync();
        // 2. The split's maximum, the exponentials and their sum.
        float maximum = -INFINITY;
        for (int j = t; j < count; j += COIL_PD_CONSUMERS) {
            maximum = fmaxf(maximum, scores[j]);
        }
        maximum = consumers_max(maximum, s.scratch);
        float sum = 0.0f;
        for (int j = t; j < count; j += COIL_PD_CONSUMERS) {
            const float p = coil_exp2_approx(scores[j] - maximum);
            scores[j] = p;
            sum += p;
        }
        sum = consumers_sum(sum, s.scratch);
        // 3. P V: thread groups of head_dim threads over the keys, then summed.
        const int lanes = min(head_dim, COIL_PD_CONSUMERS);
        const int groups = COIL_PD_CONSUMERS / lanes;
        const int d = t % lanes;
        const int first = t / lanes;
        float* sums = scores + ((count + 3) & ~3);
        for (int dim = d; dim < head_dim; dim += lanes) {
            float total = 0.0f;
            if (first < groups) {
#pragma unroll 8
                for (int j = first; j < count; j += groups) {
                    const int position = start + j;
                    float value;
                    if (position == newest) {
                        value = s.new_value[dim];
                    } else {
                        const size_t row = (size_t) __ldg(table + position / block_size) * block_size
                                + position % block_size;
                        value = cached(values, bf16, (row * kv_heads + kv_head) * padded + dim);
                    }
                    total = fmaf(scores[j], value, total);
                }
                sums[first * head_dim + dim] = total;
            }
        }
        consumers_sync();
        float* partial_out = pointer<float>(phase, F_AT_PARTIAL_OUT) + ((size_t) h * splits + split) * head_dim;
        for (int dim = t; dim < head_dim; dim += COIL_PD_CONSUMERS) {
            float total = 0.0f;
            for (int g = 0; g < groups; g++) {
                total += sums[g * head_dim + dim];
            }
            partial_out[dim] = total;
        }
        if (t == 0) {
            float* stats = pointer<float>(phase, F_AT_PARTIAL_STATS) + ((size_t) h * splits + split) * 2;
            stats[0] = maximum;
            stats[1] = sum;
        }
        consumers_sync();
    }
}

}  // namespace coil_pd

// trace (diagnostics, null when off): per phase, block 0's times (%globaltimer, ns) when its
// consumers start waiting, pass the barrier, finish the operand and finish the phase; the latest
// finish over all blocks; and when block 0's producer issued the phase's first copy.
// flags (comparisons): bits 0-1 the grid barrier's fence (0: release and acquire, else grid_arrive's
// mode + 1), bits 8-15 the ring slots used (0: all).
extern "C" __global__ void __launch_bounds__(COIL_PD_THREADS, 1) decode_persistent(const CoilPhase* __restrict__ phases,
        int count, unsigned* sync, unsigned long long* trace, int flags) {
    using namespace coil_pd;
    extern __shared__ __align__(128) unsigned char coil_pd_dynamic[];
    __shared__ __align__(8) uint64_t full[COIL_PD_SLOTS];
    __shared__ __align__(8) uint64_t empty[COIL_PD_SLOTS];
    __shared__ Shared s;
    __shared__ long long fields[COIL_PD_FIELDS];
    unsigned char* ring = coil_pd_dynamic;
    __nv_bfloat16* x = reinterpret_cast<__nv_bfloat16*>(coil_pd_dynamic + COIL_PD_SLOTS * COIL_PD_SLOT_BYTES);
    float* scores = reinterpret_cast<float*>(coil_pd_dynamic + COIL_PD_SLOTS * COIL_PD_SLOT_BYTES + 2 * COIL_PD_MAX_K);
    const int warp = threadIdx.x >> 5;
    // The barrier's default: the count raised with release semantics and read with acquire (3).
    const int fence = (flags & 3) == 0 ? 3 : (flags & 3) - 1;
    const int slots = ((flags >> 8) & 0xff) == 0 ? COIL_PD_SLOTS : min((flags >> 8) & 0xff, COIL_PD_SLOTS);
    // Fewer slots share the ring: each is larger, a phase's rows come in fewer pieces.
    const int slot_bytes = (COIL_PD_SLOTS * COIL_PD_SLOT_BYTES / slots) & ~127;
    const bool tracing = trace != nullptr && threadIdx.x == 0;
    if (threadIdx.x == 0) {
        for (int i = 0; i < COIL_PD_SLOTS; i++) {
            coil_mbarrier_init(&full[i], 1);
            coil_mbarrier_init(&empty[i], COIL_PD_WARPS);
        }
        s.bad = 0;
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    if (warp == COIL_PD_WARPS) {
        if ((threadIdx.x & 31) == 0) {
            produce(phases, count, ring, full, empty, slots, slot_bytes, trace);
        }
        return;
    }
    int piece = 0;
    unsigned* arrived = sync;
    StepInputs in;
    in.slot = __ldcg(reinterpret_cast<const int*>(__ldg(&phases[0].f[F_STEP_SLOTS])));
    in.length = __ldcg(reinterpret_cast<const int*>(__ldg(&phases[0].f[F_STEP_LENGTHS])));
    in.position = __ldcg(reinterpret_cast<const int*>(__ldg(&phases[0].f[F_STEP_POSITIONS])));
    in.cache_row = __ldcg(reinterpret_cast<const int*>(__ldg(&phases[0].f[F_STEP_CACHE_ROWS])));
    // Thread t < COIL_PD_FIELDS holds field t of the coming phase, read one phase ahead.
    long long coming = threadIdx.x < COIL_PD_FIELDS ? phases[0].f[threadIdx.x] : 0;
    for (int p = 0; p < count; p++) {
        if (threadIdx.x < COIL_PD_FIELDS) {
            fields[threadIdx.x] = coming;
            if (p + 1 < count) {
                coming = __ldg(&phases[p + 1].f[threadIdx.x]);
            }
        }
        consumers_sync();
        const long long* phase = fields;
        const int kind = field<int>(phase, F_KIND);
        Early early;
        before_wait(phase, in, early, s);
        if (kind == COIL_PD_SSM) {
            ssm_prefetch(phase, in, early);
        }
        if (tracing && blockIdx.x == 0) {
            trace[p * 6] = now();
        }
        if (p > 0 && threadIdx.x == 0) {
            grid_wait(arrived, (unsigned) p * gridDim.x, fence);
        }
        consumers_sync();
        if (tracing && blockIdx.x == 0) {
            trace[p * 6 + 1] = now();
        }
        if (kind == COIL_PD_GEMV || kind == COIL_PD_LM_HEAD) {
            make_operand(phase, x, in, early, s);
            if (tracing && blockIdx.x == 0) {
                trace[p * 6 + 2] = now();
            }
            gemv(phase, x, ring, full, empty, piece, slots, slot_bytes, in, s);
        } else if (kind == COIL_PD_SSM) {
            ssm(phase, in, early);
        } else if (kind == COIL_PD_ATTENTION) {
            attention(phase, in, scores, s);
        }
        consumers_sync();
        if (tracing) {
            const unsigned long long done = now();
            if (blockIdx.x == 0) {
                trace[p * 6 + 3] = done;
            }
            atomicMax(&trace[p * 6 + 4], done);
        }
        if (kind == COIL_PD_LM_HEAD) {
            // The last block to finish picks the token from every block's candidate.
            if (threadIdx.x == 0) {
                __threadfence();
                s.last = atomicAdd(&sync[1], 1u) == gridDim.x - 1;
            }
            consumers_sync();
            if (s.last && threadIdx.x == 0) {
                __threadfence();
                const int* partials = pointer<const int>(phase, F_ARGMAX);
                float value = -INFINITY;
                int id = 0x7fffffff;
                int bad = 0;
                for (int b = 0; b < (int) gridDim.x; b++) {
                    better(value, id, __int_as_float(__ldcg(partials + 3 * b)), __ldcg(partials + 3 * b + 1));
                    bad |= __ldcg(partials + 3 * b + 2);
                }
                *pointer<int>(phase, F_TOKENS) = bad || id == 0x7fffffff ? -1 : id;
                // Every block has passed every barrier: the counts start again at zero next step.
                atomicExch(&sync[0], 0u);
                atomicExch(&sync[1], 0u);
            }
            return;
        }
        if (threadIdx.x == 0 && p + 1 < count) {
            grid_arrive(arrived, fence);
        }
    }
}

#else

// Before sm_90 the step runs launch by launch; this entry only keeps the module's symbol set alike.
extern "C" __global__ void decode_persistent(const CoilPhase* phases, int count, unsigned* sync,
        unsigned long long* trace, int flags) {
}

#endif
