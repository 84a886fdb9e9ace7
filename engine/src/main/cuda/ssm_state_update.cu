// Mamba-2's selective state update: one decode token per sequence, f32 state in slots.
#include "common.cuh"

// Per sequence b (state slot slots[b]) and head h of group g = h / (heads / groups):
//   dt'  = softplus(dt[b, h] + dt_bias[h]) if dt_softplus, else dt[b, h] (+ dt_bias[h])
//   S    = exp(dt'·A[h]) · S + dt' · x[b, h, :] ⊗ B[b, g, :]          S: (head_dim, state_size)
//   y[b, h, p] = S[p, :] · C[b, g, :] + D[h] · x[b, h, p]
//   x: (batch, heads, head_dim) in rows of x_stride floats;  dt: (batch, heads) in rows of dt_stride
//   dt_bias: (heads) or null;  A, D: (heads);  B, C: (batch, groups, state_size) in rows of bc_stride
//   states: (slots, heads, head_dim, state_size) f32, updated in place;  y: (batch, heads, head_dim)
//   z: null, or (batch, heads · head_dim) in rows of z_stride: then y gets y · silu(z), the gated value
//   Mamba-2's gated RMSNorm starts from, computed as that norm computes it (so that the norm after
//   this, in out_proj's launch, need not make it in every block).
// Grid: (ceil(head_dim / (4 · WARP_ROWS)), heads, batch); block: 4 warps, each owning WARP_ROWS
// consecutive rows p of S, its lanes striding over the state columns (16-byte accesses when
// state_size is a multiple of 4). One row a warp (ssm_state_update_f32) spreads a few sequences over
// the most multiprocessors; four (ssm_state_update_f32_rows4, _narrow for rows of up to 128 floats)
// give a block four times the state to move for the same B, C and block start, which is what many
// sequences need (every row is still summed by one warp in the same lane order, so all give the
// same bits).
// B and C of the block's (sequence, group) sit in shared memory: 2 · state_size floats, dynamic.
// The state stays f32 whatever the activations: the recurrence accumulates rounding error.
#define SSM_WARPS_PER_BLOCK 4

template <int WARP_ROWS, int LOADS>
static __device__ __forceinline__ void coil_ssm_state_update(const float* __restrict__ x, int x_stride,
        const float* __restrict__ dt, int dt_stride, const float* __restrict__ dt_bias, int dt_softplus,
        const float* __restrict__ A, const float* __restrict__ B, const float* __restrict__ C, int bc_stride,
        const float* __restrict__ D, float* __restrict__ states, const int* __restrict__ slots,
        float* __restrict__ y, const float* __restrict__ z, int z_stride, int heads, int head_dim, int groups,
        int state_size) {
    extern __shared__ float4 shared4[];
    float* shared_b = reinterpret_cast<float*>(shared4);
    float* shared_c = shared_b + state_size;
    const int h = blockIdx.y;
    const int b = blockIdx.z;
    const int g = h / (heads / groups);
    const int first = (blockIdx.x * SSM_WARPS_PER_BLOCK + (threadIdx.x >> 5)) * WARP_ROWS;
    const int lane = threadIdx.x & 31;
    // The warp's state rows are read before coil_grid_dependency_wait: only x, dt, B and C come from
    // the kernels just before, so slots and states must not be written by the kernel launched just
    // before this one. Rows of up to LOADS · 128 floats (LOADS 16-byte loads a lane) are read early.
    // The warp's rows: `valid` of them from `base`, state_size floats apart.
    const int valid = max(0, min(WARP_ROWS, head_dim - first));
    float* const base = states + (((size_t) slots[b] * heads + h) * head_dim + (valid > 0 ? first : 0)) * state_size;
    const bool early = (state_size & 3) == 0 && state_size <= LOADS * 128;
    float4 held[WARP_ROWS][LOADS];
#pragma unroll
    for (int r = 0; r < WARP_ROWS; r++) {
#pragma unroll
        for (int i = 0; i < LOADS; i++) {
            held[r][i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (early && r < valid && lane + 32 * i < (state_size >> 2)) {
                held[r][i] = reinterpret_cast<const float4*>(base + (size_t) r * state_size)[lane + 32 * i];
            }
        }
    }
    // The head's constants do not depend on earlier kernels either.
    const float a_value = A[h];
    const float d_value = D[h];
    const float bias = dt_bias != nullptr ? dt_bias[h] : 0.0f;
    coil_grid_dependency_wait(COIL_EARLY_STATE);
    coil_launch_dependents();

    // Every input from the kernels before is requested at once, before B and C go through shared
    // memory: one wait on L2 instead of three in a row.
    const float dt_value = dt[(size_t) b * dt_stride + h];
    float x_value[WARP_ROWS];
    float z_value[WARP_ROWS];
#pragma unroll
    for (int r = 0; r < WARP_ROWS; r++) {
        const int p = first + r;
        x_value[r] = p < head_dim ? x[(size_t) b * x_stride + (size_t) h * head_dim + p] : 0.0f;
        z_value[r] = z != nullptr && p < head_dim ? z[(size_t) b * z_stride + (size_t) h * head_dim + p] : 0.0f;
    }
    const float* b_row = B + (size_t) b * bc_stride + (size_t) g * state_size;
    const float* c_row = C + (size_t) b * bc_stride + (size_t) g * state_size;
    for (int n = threadIdx.x; n < state_size; n += blockDim.x) {
        shared_b[n] = b_row[n];
        shared_c[n] = c_row[n];
    }
    __syncthreads();

    float step = dt_value + bias;
    if (dt_softplus) {
        step = coil_softplus(step);
    }
    const float decay = expf(step * a_value);

#pragma unroll
    for (int r = 0; r < WARP_ROWS; r++) {
        if (r >= valid) {
            break;
        }
        float* row = base + (size_t) r * state_size;
        const float input = step * x_value[r];
        float sum = 0.0f;
        float4* row4 = reinterpret_cast<float4*>(row);
        const float4* b4 = reinterpret_cast<const float4*>(shared_b);
        const float4* c4 = reinterpret_cast<const float4*>(shared_c);
        if (early) {
#pragma unroll
            for (int i = 0; i < LOADS; i++) {
                const int n = lane + 32 * i;
                if (n < (state_size >> 2)) {
                    row4[n] = coil_ssm_columns(held[r][i], decay, input, b4[n], c4[n], sum);
                }
            }
        } else if ((state_size & 3) == 0) {
            for (int n = lane; n < (state_size >> 2); n += 32) {
                row4[n] = coil_ssm_columns(row4[n], decay, input, b4[n], c4[n], sum);
            }
        } else {
            for (int n = lane; n < state_size; n += 32) {
                const float s = fmaf(decay, row[n], input * shared_b[n]);
                row[n] = s;
                sum = fmaf(s, shared_c[n], sum);
            }
        }
        sum = coil_warp_sum(sum);
        if (lane == 0) {
            const float out = fmaf(d_value, x_value[r], sum);
            y[(size_t) b * heads * head_dim + (size_t) h * head_dim + first + r] =
                    z != nullptr ? coil_gated(out, z_value[r]) : out;
        }
    }
}

#define COIL_SSM_STATE_UPDATE_ENTRY(name, WARP_ROWS, LOADS)                                                              \
    extern "C" __global__ void name(const float* __restrict__ x, int x_stride, const float* __restrict__ dt,      \
            int dt_stride, const float* __restrict__ dt_bias, int dt_softplus, const float* __restrict__ A,       \
            const float* __restrict__ B, const float* __restrict__ C, int bc_stride, const float* __restrict__ D, \
            float* __restrict__ states, const int* __restrict__ slots, float* __restrict__ y,                     \
            const float* __restrict__ z, int z_stride, int heads, int head_dim, int groups, int state_size) {      \
        coil_ssm_state_update<WARP_ROWS, LOADS>(x, x_stride, dt, dt_stride, dt_bias, dt_softplus, A, B, C, bc_stride, D,  \
                states, slots, y, z, z_stride, heads, head_dim, groups, state_size);                              \
    }

// Four rows a warp hold 4 · LOADS float4 a lane before the wait: with one load a row (state rows of
// up to 128 floats) the kernel takes 61 registers, eight blocks a multiprocessor, and moves a batch of
// 64 sequences' state at 2.6-2.7 TB/s on an H100; with two, 72 registers. Eight and sixteen rows a
// warp were slower (docs/performance.md).
COIL_SSM_STATE_UPDATE_ENTRY(ssm_state_update_f32, 1, 2)
COIL_SSM_STATE_UPDATE_ENTRY(ssm_state_update_f32_rows4, 4, 2)
COIL_SSM_STATE_UPDATE_ENTRY(ssm_state_update_f32_rows4_narrow, 4, 1)
