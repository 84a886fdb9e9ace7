#!/usr/bin/env python3
"""Checks the chunked training scan of train.py against the token-by-token recurrence it must equal:

    h_t = exp(dt_t * A) * h_{t-1} + dt_t * (x_t outer B_t),    y_t = h_t . C_t

in float64 on the CPU, for lengths below, at and above the chunk size, with one and with two groups.
Usage: python3 tools/train/check_scan.py   (needs only torch)
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from train import chunked_scan  # noqa: E402


def recurrence(x, dt, A, B, C):
    batch, length, heads, head_dim = x.shape
    groups, state = B.shape[2], B.shape[3]
    per_group = heads // groups
    h = torch.zeros(batch, heads, head_dim, state, dtype=x.dtype)
    ys = []
    for t in range(length):
        Bt = B[:, t].repeat_interleave(per_group, dim=1)  # (b, h, n)
        Ct = C[:, t].repeat_interleave(per_group, dim=1)
        decay = torch.exp(dt[:, t] * A)  # (b, h)
        h = h * decay[..., None, None] + (dt[:, t, :, None] * x[:, t])[..., None] * Bt[:, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", h, Ct))
    return torch.stack(ys, dim=1)


def main():
    generator = torch.Generator().manual_seed(7)
    worst = 0.0
    for length, chunk, groups in [(5, 4, 1), (16, 4, 2), (37, 8, 1), (70, 16, 2), (64, 64, 1), (129, 32, 1)]:
        batch, heads, head_dim, state = 2, 4, 3, 5
        x = torch.randn(batch, length, heads, head_dim, generator=generator, dtype=torch.float64)
        dt = torch.nn.functional.softplus(torch.randn(batch, length, heads, generator=generator, dtype=torch.float64))
        A = -torch.rand(heads, generator=generator, dtype=torch.float64) * 4
        B = torch.randn(batch, length, groups, state, generator=generator, dtype=torch.float64)
        C = torch.randn(batch, length, groups, state, generator=generator, dtype=torch.float64)
        expected = recurrence(x, dt, A, B, C)
        actual = chunked_scan(x, dt, A, B, C, chunk)
        error = ((actual - expected).norm() / expected.norm()).item()
        worst = max(worst, error)
        print(f"length {length:4d} chunk {chunk:3d} groups {groups}: relative error {error:.2e}")
    if not worst < 1e-10:
        raise SystemExit(f"chunked scan differs from the recurrence (worst relative error {worst:.2e})")
    print("chunked scan matches the recurrence")


if __name__ == "__main__":
    main()
