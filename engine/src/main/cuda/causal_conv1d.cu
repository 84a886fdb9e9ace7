// Mamba-2's depthwise causal conv1d + SiLU: over a prompt chunk (with its state carried in and out)
// and the single-token update of decode, batched over sequences that each own a state slot.
#include "common.cuh"

// out[t, c] = silu(bias[c] + Σ_j weight[c, j] · e[t + j, c]), e = the state's kernel-1 rows
// (oldest first) followed by this chunk's inputs.
//   input: (tokens, channels) in rows of input_stride floats (a column range of in_proj's output)
//   weight: (channels, kernel), weight[c, kernel-1] multiplies the current token;  bias: (channels) or null
//   state: (kernel-1, channels), read only here;  out: (tokens, channels)
// The sum before the SiLU, for token t and channel c of one chunk.
static __device__ __forceinline__ float coil_conv_prompt_sum(const float* __restrict__ input, int input_stride,
        int t, int c, int channels, const float* __restrict__ weight, const float* __restrict__ bias, int kernel,
        const float* __restrict__ state) {
    const int history = kernel - 1;
    float sum = bias != nullptr ? bias[c] : 0.0f;
    for (int j = 0; j < kernel; j++) {
        const int row = t + j;
        const float value = row < history ? state[(size_t) row * channels + c]
                                          : input[(size_t) (row - history) * input_stride + c];
        sum = fmaf(weight[c * kernel + j], value, sum);
    }
    return sum;
}

// Grid-stride loop over tokens · channels. causal_conv1d_state_f32 must follow on the same stream.
extern "C" __global__ void causal_conv1d_f32(const float* __restrict__ input, int input_stride, int tokens,
        int channels, const float* __restrict__ weight, const float* __restrict__ bias, int kernel,
        const float* __restrict__ state, float* __restrict__ out) {
    const long long n = (long long) tokens * channels;
    for (long long index = (long long) blockIdx.x * blockDim.x + threadIdx.x; index < n;
            index += (long long) gridDim.x * blockDim.x) {
        const int t = (int) (index / channels);
        const int c = (int) (index - (long long) t * channels);
        out[index] = coil_silu(coil_conv_prompt_sum(input, input_stride, t, c, channels, weight, bias, kernel, state));
    }
}

// The state after a chunk: the last kernel-1 rows of e (see causal_conv1d_f32), for channel c.
// Rows in ascending order: row r reads e[tokens + r], which is either input or a later state row
// not yet overwritten.
static __device__ __forceinline__ void coil_conv_carry(const float* __restrict__ input, int input_stride, int tokens,
        int c, int channels, int kernel, float* __restrict__ state) {
    const int history = kernel - 1;
    for (int r = 0; r < history; r++) {
        const int row = tokens + r;
        state[(size_t) r * channels + c] = row < history ? state[(size_t) row * channels + c]
                                                         : input[(size_t) (row - history) * input_stride + c];
    }
}

//   state: (kernel-1, channels), updated in place;  input as in causal_conv1d_f32
// One thread per channel.
extern "C" __global__ void causal_conv1d_state_f32(const float* __restrict__ input, int input_stride, int tokens,
        int channels, int kernel, float* __restrict__ state) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c < channels) {
        coil_conv_carry(input, input_stride, tokens, c, channels, kernel, state);
    }
}

// The same over the prompt chunks of several sequences packed one after another, in one launch each:
// chunk s holds rows starts[s] .. starts[s + 1] - 1 and carries its state in slot slots[s] of
// states (slots, kernel-1, channels); row_chunk[r] is the chunk of row r. Each row's sum and each
// state row are those the single-chunk kernels give the chunk alone (the same terms in the same order).
//   input: (rows, channels) in rows of input_stride floats;  out: (rows, channels)
// Grid: (ceil(channels / blockDim.x), ceil(rows / COIL_CONV_ROWS)). A thread owns one channel over
// COIL_CONV_ROWS consecutive rows, loads their inputs at once and slides the conv's window down them
// in registers, so each input value is read once (and the window's history at the tile's start and
// at each new chunk). One thread an output, with four reads and a 64-bit index division each, took
// 42 µs for 2048 rows of 1792 channels in an ncu run on an H100 (29 MB moved: 0.7 TB/s).
// causal_conv1d_state_varlen_f32 must follow on the same stream.
#define COIL_CONV_ROWS 16
// Widest conv kept in registers; wider ones sum each row from memory.
#define COIL_CONV_WINDOW 8
extern "C" __global__ void causal_conv1d_varlen_f32(const float* __restrict__ input, int input_stride, int rows,
        int channels, const float* __restrict__ weight, const float* __restrict__ bias, int kernel,
        const float* __restrict__ states, const int* __restrict__ slots, const int* __restrict__ starts,
        const int* __restrict__ row_chunk, float* __restrict__ out) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    const int first_row = blockIdx.y * COIL_CONV_ROWS;
    if (c >= channels || first_row >= rows) {
        return;
    }
    const int last_row = min(rows, first_row + COIL_CONV_ROWS);
    const int history = kernel - 1;
    if (kernel > COIL_CONV_WINDOW) {
        for (int r = first_row; r < last_row; r++) {
            const int s = row_chunk[r];
            const int first = starts[s];
            out[(size_t) r * channels + c] = coil_silu(coil_conv_prompt_sum(input + (size_t) first * input_stride,
                    input_stride, r - first, c, channels, weight, bias, kernel,
                    states + (size_t) slots[s] * history * channels));
        }
        return;
    }
    float taps[COIL_CONV_WINDOW - 1];
#pragma unroll
    for (int j = 0; j < COIL_CONV_WINDOW - 1; j++) {
        taps[j] = j < history ? weight[c * kernel + j] : 0.0f;
    }
    const float last_tap = weight[c * kernel + history];
    const float start = bias != nullptr ? bias[c] : 0.0f;
    // The tile's inputs and their chunks, all loads in flight before the first sum.
    float inputs[COIL_CONV_ROWS];
    int chunk_of[COIL_CONV_ROWS];
#pragma unroll
    for (int k = 0; k < COIL_CONV_ROWS; k++) {
        const int r = first_row + k;
        inputs[k] = r < last_row ? input[(size_t) r * input_stride + c] : 0.0f;
        chunk_of[k] = r < last_row ? row_chunk[r] : -1;
    }
    // window[j] = e[t + j] for the current row's t (j < history): the values before the row's own input.
    float window[COIL_CONV_WINDOW - 1];
    int chunk = -1;
#pragma unroll
    for (int k = 0; k < COIL_CONV_ROWS; k++) {
        const int r = first_row + k;
        if (r >= last_row) {
            break;
        }
        const int s = chunk_of[k];
        if (s != chunk) {
            chunk = s;
            const int first = starts[s];
            const int t = r - first;
            const float* state = states + (size_t) slots[s] * history * channels;
#pragma unroll
            for (int j = 0; j < COIL_CONV_WINDOW - 1; j++) {
                if (j < history) {
                    const int row = t + j;
                    window[j] = row < history ? state[(size_t) row * channels + c]
                                              : input[(size_t) (first + row - history) * input_stride + c];
                }
            }
        }
        const float current = inputs[k];
        float sum = start;
#pragma unroll
        for (int j = 0; j < COIL_CONV_WINDOW - 1; j++) {
            if (j < history) {
                sum = fmaf(taps[j], window[j], sum);
            }
        }
        sum = fmaf(last_tap, current, sum);
        out[(size_t) r * channels + c] = coil_silu(sum);
#pragma unroll
        for (int j = 0; j < COIL_CONV_WINDOW - 1; j++) {
            if (j + 1 < history) {
                window[j] = window[j + 1];
            } else if (j + 1 == history) {
                window[j] = current;
            }
        }
    }
}

// Grid: (ceil(channels / blockDim.x), chunks); one thread per (chunk, channel).
extern "C" __global__ void causal_conv1d_state_varlen_f32(const float* __restrict__ input, int input_stride,
        int channels, int kernel, float* __restrict__ states, const int* __restrict__ slots,
        const int* __restrict__ starts) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    const int s = blockIdx.y;
    if (c < channels) {
        const int first = starts[s];
        coil_conv_carry(input + (size_t) first * input_stride, input_stride, starts[s + 1] - first, c, channels,
                kernel, states + (size_t) slots[s] * (kernel - 1) * channels);
    }
}

// One decode token for each of `batch` sequences; sequence b owns conv state slot slots[b].
//   input: (batch, channels) in rows of input_stride floats;  weight, bias as above
//   states: (slots, kernel-1, channels), slot slots[b] read and shifted by one row in place
//   out: (batch, channels)
// Grid-stride loop over batch · channels; each thread owns one (slot, channel) column.
// The state and the weights are read before coil_grid_dependency_wait (only the new input comes from
// the kernel before): the sum over a thread's first column's history is made while that kernel
// finishes. So slots and states must not be written by the kernel launched just before this one.
extern "C" __global__ void causal_conv1d_update_f32(const float* __restrict__ input, int input_stride, int batch,
        int channels, const float* __restrict__ weight, const float* __restrict__ bias, int kernel,
        float* __restrict__ states, const int* __restrict__ slots, float* __restrict__ out) {
    const long long n = (long long) batch * channels;
    const long long first = (long long) blockIdx.x * blockDim.x + threadIdx.x;
    float first_sum = 0.0f;
    if (first < n) {
        first_sum = coil_conv_history_sum(weight, bias, kernel, states, slots, channels, first);
    }
    COIL_AFTER_PREVIOUS_KERNEL();
    for (long long index = first; index < n; index += (long long) gridDim.x * blockDim.x) {
        const int b = (int) (index / channels);
        const int c = (int) (index - (long long) b * channels);
        const float current = input[(size_t) b * input_stride + c];
        const float sum = index == first ? first_sum
                                         : coil_conv_history_sum(weight, bias, kernel, states, slots, channels, index);
        out[index] = coil_conv_update_column(weight, kernel, states, slots[b], channels, c, current, sum);
    }
}
