// Helpers shared by every kernel file. The build compiles all .cu files of this folder as one
// translation unit (scripts/build-kernels.sh), so helpers here are static and guarded.
#ifndef COIL_COMMON_CUH
#define COIL_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

// Blocks of the row-wise kernels (norms, embedding): 256 threads, 8 warps.
#define COIL_ROW_THREADS 256

// Whether a pointer may be read 16 bytes at a time.
static __device__ __forceinline__ bool coil_aligned16(const void* pointer) {
    return (reinterpret_cast<uintptr_t>(pointer) & 15) == 0;
}

// Eight bf16 values (16 bytes) widened to f32, in order.
static __device__ __forceinline__ void coil_bf16x8_to_float(uint4 packed, float (&values)[8]) {
    const unsigned int words[4] = {packed.x, packed.y, packed.z, packed.w};
#pragma unroll
    for (int j = 0; j < 4; j++) {
        values[2 * j] = __uint_as_float(words[j] << 16);
        values[2 * j + 1] = __uint_as_float(words[j] & 0xffff0000u);
    }
}

// ---- Copies from global into shared memory that do not hold the thread (cp.async, sm_80+) ----

// 16 bytes from global to shared memory; valid false reads nothing and writes zeros (then `global`
// need only be some valid address).
static __device__ __forceinline__ void coil_copy16(void* shared, const void* global, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"((unsigned int) __cvta_generic_to_shared(
                         shared)),
            "l"(global), "r"(valid ? 16 : 0)
            : "memory");
#endif
}

// Closes this thread's copies queued since the last commit into one group.
static __device__ __forceinline__ void coil_copy_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// Waits until at most PENDING of this thread's committed groups are still in flight (a barrier
// after it publishes every thread's copies to the block).
template <int PENDING>
static __device__ __forceinline__ void coil_copy_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory");
#endif
}

// Asks L2 for the 128-byte line holding `pointer` (no registers, no wait): weights a kernel will
// read after its wait, whose addresses it knows before.
static __device__ __forceinline__ void coil_prefetch_l2(const void* pointer) {
    asm volatile("prefetch.global.L2 [%0];" ::"l"(pointer));
}

// A 16-byte chunk of weights read once (through the read-only path, not kept in L1): a product's
// weights stream past, and L1 keeps what the warps read again (their operand).
static __device__ __forceinline__ uint4 coil_load_streaming(const uint4* pointer) {
    uint4 value;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(value.x), "=r"(value.y), "=r"(value.z), "=r"(value.w)
                 : "l"(pointer));
    return value;
}

// 2^x by the hardware's approximation (ex2.approx.ftz, about 2 ulp; __expf(x) is this of
// x · log2(e)); 2^-inf = 0.
static __device__ __forceinline__ float coil_exp2_approx(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

static __device__ __forceinline__ float coil_warp_sum(float value) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        value += __shfl_xor_sync(0xffffffffu, value, offset);
    }
    return value;
}

static __device__ __forceinline__ float coil_warp_max(float value) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
    }
    return value;
}

// Sum over the whole block; every thread gets the total. scratch: 32 floats of shared memory.
// The leading barrier lets a caller reuse scratch for a second reduction.
static __device__ __forceinline__ float coil_block_sum(float value, float* scratch) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = (blockDim.x + 31) >> 5;
    value = coil_warp_sum(value);
    __syncthreads();
    if (lane == 0) {
        scratch[warp] = value;
    }
    __syncthreads();
    value = lane < warps ? scratch[lane] : 0.0f;
    return coil_warp_sum(value);
}

// The better of two argmax candidates: the larger value, the lower id on ties (argmax.cu, lm_head_argmax.cu).
static __device__ __forceinline__ void coil_better(float& value, int& id, float other_value, int other_id) {
    if (other_value > value || (other_value == value && other_id < id)) {
        value = other_value;
        id = other_id;
    }
}

// The warp's best candidate in every lane (coil_better over an xor butterfly).
static __device__ __forceinline__ void coil_warp_better(float& value, int& id) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        coil_better(value, id, __shfl_xor_sync(0xffffffffu, value, offset), __shfl_xor_sync(0xffffffffu, id, offset));
    }
}

// silu(v) = v / (1 + e^-v), rounded step by step as the Java code does (no contraction into fma).
static __device__ __forceinline__ float coil_silu(float value) {
    return __fdiv_rn(value, __fadd_rn(1.0f, expf(-value)));
}

// silu(gate) · up, the MLP's activation: silu_multiply_f32 and every launch that makes it in its
// place (the down projection's operand, the end of the stacked gate and up) round it alike.
static __device__ __forceinline__ float coil_silu_product(float gate, float up) {
    return __fmul_rn(coil_silu(gate), up);
}

// max(v, 0)², NemotronH's MLP and experts: squared_relu_f32 and the experts' launches round it alike.
static __device__ __forceinline__ float coil_squared_relu(float value) {
    const float r = fmaxf(value, 0.0f);
    return __fmul_rn(r, r);
}

// y · silu(z), the value Mamba-2's gated RMSNorm starts from: gated_rms_norm_f32, the few-rows
// product's gated norm and the state update's gate compute it alike.
static __device__ __forceinline__ float coil_gated(float y, float z) {
    return y * coil_silu(z);
}

// Stores a result as f32 in out, or, when out16 is given, rounded to bf16 there instead (the
// operand of the bf16 product that reads it next).
static __device__ __forceinline__ void coil_store(float* out, __nv_bfloat16* out16, size_t index, float value) {
    if (out16 != nullptr) {
        out16[index] = __float2bfloat16_rn(value);
    } else {
        out[index] = value;
    }
}

// ---- Mamba-2's causal conv update of one decode token ----

// bias[c] + Σ_j weight[c, j] · state[j, c] over the history rows of the (sequence, channel) column
// `index` = b · channels + c: the conv's terms that do not involve the new token.
static __device__ __forceinline__ float coil_conv_history_sum(const float* __restrict__ weight,
        const float* __restrict__ bias, int kernel, const float* states, const int* __restrict__ slots, int channels,
        long long index) {
    const int history = kernel - 1;
    const int b = (int) (index / channels);
    const int c = (int) (index - (long long) b * channels);
    const float* column = states + (size_t) slots[b] * history * channels + c;
    float sum = bias != nullptr ? bias[c] : 0.0f;
    for (int j = 0; j < history; j++) {
        sum = fmaf(weight[c * kernel + j], column[(size_t) j * channels], sum);
    }
    return sum;
}

// The rest of a decode token's conv update of channel c of the sequence in state slot `slot`: the
// new value's term added to `sum` (coil_conv_history_sum), the column's state shifted by the new
// value, and silu of the sum returned. causal_conv1d_update_f32 and the batch-invariant product's
// end (gemm_invariant_decode.cu) make it alike.
static __device__ __forceinline__ float coil_conv_update_column(const float* __restrict__ weight, int kernel,
        float* states, int slot, int channels, int c, float current, float sum) {
    const int history = kernel - 1;
    float* column = states + (size_t) slot * history * channels + c;
    sum = fmaf(weight[c * kernel + history], current, sum);
    for (int j = 0; j + 1 < history; j++) {
        column[(size_t) j * channels] = column[(size_t) (j + 1) * channels];
    }
    if (history > 0) {
        column[(size_t) (history - 1) * channels] = current;
    }
    return coil_silu(sum);
}

// Programmatic dependent launch (sm_90): a kernel launched with programmatic stream serialization
// may start while the kernel before it finishes; it must pass coil_grid_dependency_wait (which
// returns once that kernel has completed and its writes are visible) before reading anything
// earlier kernels wrote or writing anything they read. coil_launch_dependents lets the next such
// kernel start early. Both are no-ops without that launch attribute and before sm_90.
//
// Tracing (diagnostics, DecodeTrace): while coil_trace_on is set, thread 0 of block 0 of each such
// kernel records when its wait returned (%globaltimer, ns) and its grid and block sizes, in the
// order the waits return. The flag is read before the wait, so that the path after it gains only a
// predicate while tracing is off.
#define COIL_TRACE_CAPACITY 16384
__device__ unsigned int coil_trace_on;
__device__ unsigned int coil_trace_next;
__device__ unsigned long long coil_trace[COIL_TRACE_CAPACITY][2];

// The kernels whose bit coil_dependents_early has (KernelModule, -Dcoil.cuda.gemvOverlap; the decode
// products pass their kind) let the next kernel start before their own wait rather than after it, so that it can be resident and load its weights while this one still waits. The
// wait itself returns only once the kernel before has completed, so no read or write moves.
__device__ unsigned int coil_dependents_early;

// One trace record: now, and the packed shape (DecodeTrace.read unpacks it).
static __device__ __forceinline__ void coil_trace_record(unsigned long long shape) {
    unsigned long long now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    const unsigned int slot = atomicAdd(&coil_trace_next, 1u);
    if (slot < COIL_TRACE_CAPACITY) {
        coil_trace[slot][0] = now;
        coil_trace[slot][1] = shape;
    }
}

// early_kind: 0, or the bit of coil_dependents_early that lets this kernel start the next one early
// (COIL_EARLY_*).
#define COIL_EARLY_NARROW 1u // the decode products of one column a warp, and of several rows
#define COIL_EARLY_WIDE 2u   // the one-row products of two columns a warp (in_proj, gate and up)
#define COIL_EARLY_STATE 4u  // Mamba-2's decode state update
static __device__ __forceinline__ void coil_grid_dependency_wait(unsigned int early_kind = 0) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const bool trace = threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0
            && *(volatile unsigned int*) &coil_trace_on != 0;
    if ((*(volatile unsigned int*) &coil_dependents_early & early_kind) != 0) {
        asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    }
    asm volatile("griddepcontrol.wait;" ::: "memory");
    if (trace) {
        coil_trace_record(((unsigned long long) gridDim.x << 40) | ((unsigned long long) gridDim.y << 24)
                | ((unsigned long long) gridDim.z << 12) | blockDim.x);
    }
#endif
}

// Trace marks (diagnostics): thread 0 of block 0 records a point of a step that no wait shows
// (a plain kernel's start, a kernel's end), with a grid of 0 and the mark in place of the block
// size, so that a trace spans the whole step: the entry before the graph, the embedding, the argmax's
// end, lm_head's end (its last block), and the start and end of a drawing step's sampling kernel.
#define COIL_MARK_ENTRY 1
#define COIL_MARK_EMBEDDING 2
#define COIL_MARK_ARGMAX_END 3
#define COIL_MARK_LM_HEAD_END 4
#define COIL_MARK_SAMPLING_START 5
#define COIL_MARK_SAMPLING_END 6
// The mark from the calling thread, whichever it is (lm_head's last block to finish, say).
static __device__ __forceinline__ void coil_trace_mark_here(unsigned int mark) {
    if (*(volatile unsigned int*) &coil_trace_on != 0) {
        coil_trace_record(mark);
    }
}

static __device__ __forceinline__ void coil_trace_mark(unsigned int mark) {
    if (threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0) {
        coil_trace_mark_here(mark);
    }
}

static __device__ __forceinline__ void coil_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// The first statement of a kernel launched programmatically that has nothing to do before its inputs.
#define COIL_AFTER_PREVIOUS_KERNEL()   \
    coil_grid_dependency_wait();       \
    coil_launch_dependents()

// Mamba-2's decode step (ssm_state_update.cu, and the persistent kernel's state update):
// dt' = softplus(dt) in f32, as the separate kernel always took it.
static __device__ __forceinline__ float coil_softplus(float value) {
    return value > 20.0f ? value : log1pf(expf(value));
}

// Four columns of a state row: S = decay · S + input · B, and their share of S · C added to sum,
// in the order both kernels add them (so their outputs are equal bit for bit).
static __device__ __forceinline__ float4 coil_ssm_columns(float4 s, float decay, float input, float4 b, float4 c,
        float& sum) {
    s.x = fmaf(decay, s.x, input * b.x);
    s.y = fmaf(decay, s.y, input * b.y);
    s.z = fmaf(decay, s.z, input * b.z);
    s.w = fmaf(decay, s.w, input * b.w);
    sum = fmaf(s.x, c.x, sum);
    sum = fmaf(s.y, c.y, sum);
    sum = fmaf(s.z, c.z, sum);
    sum = fmaf(s.w, c.w, sum);
    return s;
}

// Rotary position embedding (rope.cu): the frequency and angle rounded to f32 as HF computes them,
// cos/sin and the rotation in double.
// The turn of pair i at `position`: its sine and cosine.
static __device__ __forceinline__ void coil_rope_turn(float position, int i, int rotary_dim, float theta,
        double& sine, double& cosine) {
    const float exponent = __fdiv_rn((float) (2 * i), (float) rotary_dim);
    const float inverse_frequency = __fdiv_rn(1.0f, (float) pow((double) theta, (double) exponent));
    const float angle = __fmul_rn(position, inverse_frequency);
    sincos((double) angle, &sine, &cosine);
}

// The pair (x1, x2) turned by (sine, cosine): its first value (second false) or its second.
static __device__ __forceinline__ float coil_rope_turned(float x1, float x2, double sine, double cosine, bool second) {
    const double a = x1;
    const double b = x2;
    return second ? (float) __dadd_rn(__dmul_rn(b, cosine), __dmul_rn(a, sine))
                  : (float) __dsub_rn(__dmul_rn(a, cosine), __dmul_rn(b, sine));
}

// Pair (first[0], first[half]) turned by (sine, cosine).
static __device__ __forceinline__ void coil_rope_pair(float* first, int half, double sine, double cosine) {
    const float x1 = first[0];
    const float x2 = first[half];
    first[0] = coil_rope_turned(x1, x2, sine, cosine, false);
    first[half] = coil_rope_turned(x1, x2, sine, cosine, true);
}

#endif
