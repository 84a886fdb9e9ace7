// Rotary position embedding, rotate-half (NeoX) form, in place.
#include "common.cuh"

// On the first rotary_dim dims of each head, pairs (i, i + rotary_dim/2) turn by the angle
// position · inv_freq[i], inv_freq[i] = theta^(-2i / rotary_dim).
//   x: (tokens, heads, head_dim), rotated in place
//   positions: (tokens) absolute position of each row, or null: row t is at first_position + t
// Grid: (tokens); block: COIL_ROW_THREADS threads over (head, i) pairs.
// NOTE: the frequency and the angle are rounded to f32 exactly as HF computes them (the reference
// does the same), then cos/sin and the rotation run in double: at positions in the thousands an f32
// sin/cos of the f32 angle would differ from the reference in the last bits for no gain.
// coil_rope_turn and coil_rope_pair (common.cuh) compute and apply one pair's turn.

// Row t of x (heads, head_dim) turned to `position`; the block's threads stride over the (head, i) pairs.
static __device__ __forceinline__ void coil_rope_row(float* x, int t, float position, int heads, int head_dim,
        int rotary_dim, float theta) {
    const int half = rotary_dim / 2;
    for (int pair = threadIdx.x; pair < heads * half; pair += blockDim.x) {
        const int h = pair / half;
        const int i = pair - h * half;
        double sine, cosine;
        coil_rope_turn(position, i, rotary_dim, theta, sine, cosine);
        coil_rope_pair(x + ((size_t) t * heads + h) * head_dim + i, half, sine, cosine);
    }
}

extern "C" __global__ void rope_f32(float* x, const int* __restrict__ positions, int heads, int head_dim,
        int rotary_dim, float theta, int first_position) {
    COIL_AFTER_PREVIOUS_KERNEL();
    const int t = blockIdx.x;
    const float position = (float) (positions != nullptr ? positions[t] : first_position + t);
    coil_rope_row(x, t, position, heads, head_dim, rotary_dim, theta);
}
