package dev.coil.engine.ref;

import dev.coil.engine.ops.AttentionShape;
import dev.coil.engine.ops.SsmShape;

/** Placeholder: reference scan and attention. */
public final class SequenceRef {
    public static void scan(SsmShape shape, int tokens, float[] x, float[] dt, float[] A, float[] B, float[] C, float[] D, float[] state, float[] y) { throw new UnsupportedOperationException("TODO"); }
    public static void attention(AttentionShape shape, int tokens, int past, float scale, float[] q, float[] keys, float[] values, float[] out) { throw new UnsupportedOperationException("TODO"); }
}
