package dev.coil.engine.cache;

/**
 * The prefix cache's keys: a chain of 64-bit hashes, one per full block, each over its parent's
 * hash and the block's token ids, so equal hashes mean equal prefixes (up to collisions, which the
 * index rules out by comparing the stored tokens). Partial prefixes (a snapshot taken mid-block)
 * hash the last full block's chain hash with the tail's tokens and length.
 */
public final class PrefixHash {

    /** The hash of the empty prefix. */
    public static final long ROOT = 0x6A09E667F3BCC909L;

    private PrefixHash() {
    }

    /**
     * The hash of the empty prefix of requests salted with {@code salt} (vLLM's cache_salt): {@link #ROOT}
     * for none, else a root no unsalted or differently salted prefix chain starts from.
     */
    public static long root(String salt) {
        if (salt == null) {
            return ROOT;
        }
        long h = mix(ROOT ^ 0xD6E8FEB86659FD93L * (salt.length() + 1));
        for (int i = 0; i < salt.length(); i++) {
            h = mix(h ^ salt.charAt(i) * 0xC2B2AE3D27D4EB4FL);
        }
        return h;
    }

    /** Hash of tokens[from, to) following a prefix hashed {@code parent}. */
    public static long extend(long parent, int[] tokens, int from, int to) {
        long h = mix(parent ^ 0x9E3779B97F4A7C15L * (to - from + 1));
        for (int i = from; i < to; i++) {
            h = mix(h ^ (tokens[i] & 0xFFFFFFFFL) * 0xC2B2AE3D27D4EB4FL);
        }
        return h;
    }

    /** A bijective 64-bit mixer (the splitmix64 finaliser). */
    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
