package dev.coil.engine.tokenizer;

/**
 * Byte-level BPE's spelling of bytes (GPT-2's scheme, which Hugging Face tokenizers' ByteLevel
 * pre-tokenizer and decoder use): every byte is written as one printable character, so that a
 * vocabulary of strings can hold any bytes. The printable ASCII and Latin-1 characters stand for
 * their own code; the other 68 bytes (controls, space, DEL, NBSP, soft hyphen) stand as U+0100 on, in
 * order. Read backwards here to find the bytes of a token that holds part of a character.
 */
final class ByteLevelBytes {

    /** byteOf[c] = the byte character c stands for, or -1; c < 0x144 covers every character of the scheme. */
    private static final int[] BYTE_OF = new int[0x144];

    static {
        java.util.Arrays.fill(BYTE_OF, -1);
        int shifted = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            BYTE_OF[printable ? b : 0x100 + shifted++] = b;
        }
    }

    private ByteLevelBytes() {
    }

    /** The bytes {@code spelling} stands for, or null when a character of it is not of the scheme. */
    static byte[] bytes(String spelling) {
        byte[] bytes = new byte[spelling.length()];
        for (int i = 0; i < bytes.length; i++) {
            char c = spelling.charAt(i);
            if (c >= BYTE_OF.length || BYTE_OF[c] < 0) {
                return null;
            }
            bytes[i] = (byte) BYTE_OF[c];
        }
        return bytes;
    }
}
