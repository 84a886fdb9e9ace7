package dev.coil.engine.tokenizer;

/**
 * Makes DJL load the tokenizers native library that ships inside its jar instead of downloading one.
 *
 * <p>DJL picks a library "flavor" from the machine: on a host with CUDA it looks for a CUDA build, which is
 * not in the jar, and fetches it from publish.djl.ai. In offline mode ({@code ai.djl.offline=true}) it uses
 * the bundled CPU build (extracted once to DJL's cache directory, {@code ~/.djl.ai} unless
 * {@code ENGINE_CACHE_DIR} or {@code DJL_CACHE_DIR} says otherwise) and never opens a connection. Tokenizing
 * on the CPU is all Coil needs, so offline mode is set unless the operator set it explicitly.
 */
final class NativeTokenizerLibrary {

    static final String OFFLINE_PROPERTY = "ai.djl.offline";

    private NativeTokenizerLibrary() {
    }

    /** Must run before the first DJL tokenizer class is initialised (DJL loads the library then). */
    static void useBundledCopy() {
        if (System.getProperty(OFFLINE_PROPERTY) == null && System.getenv("DJL_OFFLINE") == null) {
            System.setProperty(OFFLINE_PROPERTY, "true");
        }
    }
}
