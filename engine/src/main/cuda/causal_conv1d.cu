// Mamba-2's depthwise causal conv1d + SiLU: over a prompt chunk (with its state carried in and out)
// and the single-token update of decode, batched over sequences that each own a state slot.
#include "common.cuh"

// out[t, c] = silu(bias[c] + Σ_j weight[c, j] · e[t + j, c]), e = the state's kernel-1 rows
// (oldest first) followed by this chunk's inputs.
//   input: (tokens, channels) in rows of input_stride floats (a column range of in_proj's output)
//   weight: (channels, kernel), weight[c, kernel-1] multiplies the current token;  bias: (channels) or null
//   state: (kernel-1, channels), read only here;  out: (tokens, channels)
// Grid-stride loop over tokens · channels. causal_conv1d_state_f32 must follow on the same stream.
extern "C" __global__ void causal_conv1d_f32(const float* __restrict__ input, int input_stride, int tokens,
        int channels, const float* __restrict__ weight, const float* __restrict__ bias, int kernel,
        const float* __restrict__ state, float* __restrict__ out) {
    const int history = kernel - 1;
    const long long n = (long long) tokens * channels;
    for (long long index = (long long) blockIdx.x * blockDim.x + threadIdx.x; index < n;
            index += (long long) gridDim.x * blockDim.x) {
        const int t = (int) (index / channels);
        const int c = (int) (index - (long long) t * channels);
        float sum = bias != nullptr ? bias[c] : 0.0f;
        for (int j = 0; j < kernel; j++) {
            const int row = t + j;
            const float value = row < history ? state[(size_t) row * channels + c]
                                              : input[(size_t) (row - history) * input_stride + c];
            sum = fmaf(weight[c * kernel + j], value, sum);
        }
        out[index] = coil_silu(sum);
    }
}

// The state after a chunk: the last kernel-1 rows of e (see causal_conv1d_f32).
//   state: (kernel-1, channels), updated in place;  input as in causal_conv1d_f32
// One thread per channel, rows in ascending order: row r reads e[tokens + r], which is either input
// or a later state row not yet overwritten.
extern "C" __global__ void causal_conv1d_state_f32(const float* __restrict__ input, int input_stride, int tokens,
        int channels, int kernel, float* __restrict__ state) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= channels) {
        return;
    }
    const int history = kernel - 1;
    for (int r = 0; r < history; r++) {
        const int row = tokens + r;
        state[(size_t) r * channels + c] = row < history ? state[(size_t) row * channels + c]
                                                         : input[(size_t) (row - history) * input_stride + c];
    }
}

// One decode token for each of `batch` sequences; sequence b owns conv state slot slots[b].
//   input: (batch, channels) in rows of input_stride floats;  weight, bias as above
//   states: (slots, kernel-1, channels), slot slots[b] read and shifted by one row in place
//   out: (batch, channels)
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

// Grid-stride loop over batch · channels; each thread owns one (slot, channel) column.
// The state and the weights are read before coil_grid_dependency_wait (only the new input comes from
// the kernel before): the sum over a thread's first column's history is made while that kernel
// finishes. So slots and states must not be written by the kernel launched just before this one.
extern "C" __global__ void causal_conv1d_update_f32(const float* __restrict__ input, int input_stride, int batch,
        int channels, const float* __restrict__ weight, const float* __restrict__ bias, int kernel,
        float* __restrict__ states, const int* __restrict__ slots, float* __restrict__ out) {
    const int history = kernel - 1;
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
        float* column = states + (size_t) slots[b] * history * channels + c;
        const float current = input[(size_t) b * input_stride + c];
        float sum = index == first ? first_sum
                                   : coil_conv_history_sum(weight, bias, kernel, states, slots, channels, index);
        sum = fmaf(weight[c * kernel + history], current, sum);
        for (int j = 0; j + 1 < history; j++) {
            column[(size_t) j * channels] = column[(size_t) (j + 1) * channels];
        }
        if (history > 0) {
            column[(size_t) (history - 1) * channels] = current;
        }
        out[index] = coil_silu(sum);
    }
}
