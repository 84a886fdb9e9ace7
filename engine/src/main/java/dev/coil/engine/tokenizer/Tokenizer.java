package dev.coil.engine.tokenizer;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Set;

/**
 * Text to token ids and back for one model, exactly as Hugging Face tokenizers does it: the model folder's
 * tokenizer.json is run by the tokenizers library itself (Rust, through DJL's bindings), so normalisation,
 * pre-tokenisation, merges, added tokens and post-processing (BOS/EOS insertion) are the reference ones.
 *
 * <p>This class owns the native tokenizer and a vocabulary index read from the same JSON (token to id,
 * which special tokens exist). It never truncates or pads, and adds special tokens only when asked. It does
 * not apply chat templates ({@link ChatTemplate}) or stream text ({@link StreamingDecoder}).
 *
 * <p>NOTE: {@link #decode} returns the tokenizers library's decoding. transformers additionally applies its
 * legacy {@code clean_up_tokenization_spaces} pass (" ." to ".", " 's" to "'s", ...) when a
 * tokenizer_config.json asks for it; Coil does not, because that pass cannot be applied to a stream of text
 * deltas consistently. Current chat models set it to false.
 *
 * <p>Thread-safe: the native tokenizer is immutable once built; calls from several threads are fine.
 */
public final class Tokenizer implements AutoCloseable {

    static {
        NativeTokenizerLibrary.useBundledCopy();
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    private final HuggingFaceTokenizer tokenizer;
    private final Map<String, Integer> idOfToken;
    private final Set<Integer> specialIds;
    private final int vocabSize;
    private final String bosToken;
    private final String eosToken;
    /** Per id, the model vocabulary's spelling of the token (null for ids it lacks), when its decoder is byte-level. */
    private final String[] byteLevelSpellings;
    /** Per id, an added token's text (null for the model vocabulary's tokens). */
    private final String[] addedTexts;

    private Tokenizer(HuggingFaceTokenizer tokenizer, Map<String, Integer> idOfToken, Set<Integer> specialIds,
            int vocabSize, String bosToken, String eosToken, String[] byteLevelSpellings, String[] addedTexts) {
        this.tokenizer = tokenizer;
        this.idOfToken = idOfToken;
        this.specialIds = specialIds;
        this.vocabSize = vocabSize;
        this.bosToken = bosToken;
        this.eosToken = eosToken;
        this.byteLevelSpellings = byteLevelSpellings;
        this.addedTexts = addedTexts;
    }

    /**
     * Loads a tokenizer.json.
     *
     * @param tokenizerJson the tokenizer.json file of a model folder
     * @param tokenizerConfigOrNull the parsed tokenizer_config.json of the same folder, or null when the
     *     folder has none; read for {@code bos_token} and {@code eos_token} only
     * @throws IOException when the file cannot be read or is not a tokenizer the library accepts; the message
     *     names the file
     */
    public static Tokenizer load(Path tokenizerJson, JsonNode tokenizerConfigOrNull) throws IOException {
        byte[] bytes = Files.readAllBytes(tokenizerJson);
        JsonNode root;
        try {
            root = JSON.readTree(bytes);
        } catch (IOException e) {
            throw new IOException(tokenizerJson + " is not valid JSON: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject() || !root.path("model").isObject()) {
            throw new IOException(tokenizerJson + " has no \"model\" object; expected a Hugging Face tokenizers "
                    + "file (tokenizer.json as saved by tokenizers or transformers)");
        }

        Map<String, Integer> idOfToken = new HashMap<>();
        Set<Integer> specialIds = new HashSet<>();
        int maxId = indexVocabulary(root, idOfToken, specialIds);

        HuggingFaceTokenizer tokenizer;
        try {
            // Options are DJL's: without them it truncates to 512 tokens and pads batches.
            tokenizer = HuggingFaceTokenizer.newInstance(new ByteArrayInputStream(bytes), Map.of(
                    "addSpecialTokens", "false",
                    "truncation", "false",
                    "padding", "false",
                    "doLowerCase", "false"));
        } catch (RuntimeException e) {
            throw new IOException(tokenizerJson + " could not be loaded by the tokenizers library: "
                    + e.getMessage(), e);
        }

        String[] addedTexts = new String[maxId + 1];
        for (JsonNode added : root.path("added_tokens")) {
            addedTexts[added.path("id").asInt()] = added.path("content").asText();
        }
        String[] byteLevelSpellings = null;
        if (ByteLevelBytes.decodesBytes(root.path("decoder")) && root.path("model").path("vocab").isObject()) {
            byteLevelSpellings = new String[maxId + 1];
            for (var entry : root.path("model").path("vocab").properties()) {
                byteLevelSpellings[entry.getValue().asInt()] = entry.getKey();
            }
        }
        return new Tokenizer(tokenizer, idOfToken, Set.copyOf(specialIds), maxId + 1,
                specialToken(tokenizerConfigOrNull, "bos_token"),
                specialToken(tokenizerConfigOrNull, "eos_token"), byteLevelSpellings, addedTexts);
    }

    /** Loads {@code folder/tokenizer.json}, with {@code folder/tokenizer_config.json} when it exists. */
    public static Tokenizer loadFolder(Path folder) throws IOException {
        Path config = folder.resolve("tokenizer_config.json");
        JsonNode configNode = null;
        if (Files.isRegularFile(config)) {
            try {
                configNode = JSON.readTree(config.toFile());
            } catch (IOException e) {
                throw new IOException(config + " is not valid JSON: " + e.getMessage(), e);
            }
        }
        return load(folder.resolve("tokenizer.json"), configNode);
    }

    /**
     * Token ids of {@code text}.
     *
     * @param addSpecialTokens whether to run the tokenizer's post-processor (for example to prepend BOS), as
     *     {@code add_special_tokens} in transformers. Chat prompts rendered by a template already hold their
     *     special tokens as text and are encoded with false.
     */
    public int[] encode(String text, boolean addSpecialTokens) {
        long[] ids = tokenizer.encode(text, addSpecialTokens, false).getIds();
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = Math.toIntExact(ids[i]);
        }
        return out;
    }

    /**
     * The text of {@code ids}; ids outside the vocabulary are ignored, as the tokenizers library does.
     *
     * @param skipSpecialTokens drop special tokens (BOS, EOS, chat markers declared special) from the text
     */
    public String decode(int[] ids, boolean skipSpecialTokens) {
        long[] wide = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            wide[i] = ids[i];
        }
        return tokenizer.decode(wide, skipSpecialTokens);
    }

    /**
     * One more than the largest id the tokenizer can produce (model vocabulary plus added tokens). A model's
     * embedding table may have more rows than this (padded vocabularies); those ids decode to nothing.
     */
    public int vocabSize() {
        return vocabSize;
    }

    /** The id of a token as spelled in tokenizer.json (for example "&lt;|im_end|&gt;" or "Ġthe"). */
    public OptionalInt tokenId(String token) {
        Integer id = idOfToken.get(token);
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    /**
     * The bytes token {@code id} stands for in decoded text, where the tokenizer's decoder is byte-level
     * (GPT-2's, as Granite, Bamba and Nemotron-H models have): a token may hold part of a character's
     * UTF-8, which its text alone cannot show (it decodes to U+FFFD). An added token's bytes are its
     * text's. Null when the decoder is not byte-level, or for an id the tokenizer lacks.
     */
    public byte[] tokenBytes(int id) {
        if (byteLevelSpellings == null || id < 0 || id >= addedTexts.length) {
            return null;
        }
        if (addedTexts[id] != null) {
            return addedTexts[id].getBytes(java.nio.charset.StandardCharsets.UTF_8);
        }
        return byteLevelSpellings[id] == null ? null : ByteLevelBytes.bytes(byteLevelSpellings[id]);
    }

    /** Whether {@code id} is an added token declared special (skipped by {@code decode(ids, true)}). */
    public boolean isSpecial(int id) {
        return specialIds.contains(id);
    }

    /** tokenizer_config.json's {@code bos_token}, or null when it has none. */
    public String bosToken() {
        return bosToken;
    }

    /** tokenizer_config.json's {@code eos_token}, or null when it has none. */
    public String eosToken() {
        return eosToken;
    }

    /** The id of {@link #eosToken()}, when it is set and in the vocabulary. */
    public OptionalInt eosTokenId() {
        return eosToken == null ? OptionalInt.empty() : tokenId(eosToken);
    }

    @Override
    public void close() {
        tokenizer.close();
    }

    /**
     * Fills {@code idOfToken} from model.vocab and added_tokens and {@code specialIds} from the added tokens
     * marked special. Returns the largest id seen.
     */
    private static int indexVocabulary(JsonNode root, Map<String, Integer> idOfToken, Set<Integer> specialIds) {
        int maxId = -1;
        JsonNode vocab = root.path("model").path("vocab");
        if (vocab.isObject()) {
            // BPE, WordPiece, WordLevel: {"token": id, ...}
            for (var entry : vocab.properties()) {
                int id = entry.getValue().asInt();
                idOfToken.put(entry.getKey(), id);
                maxId = Math.max(maxId, id);
            }
        } else if (vocab.isArray()) {
            // Unigram: [["piece", score], ...], the id is the position.
            for (int id = 0; id < vocab.size(); id++) {
                idOfToken.putIfAbsent(vocab.get(id).path(0).asText(), id);
            }
            maxId = vocab.size() - 1;
        }
        for (JsonNode added : root.path("added_tokens")) {
            int id = added.path("id").asInt();
            idOfToken.put(added.path("content").asText(), id);
            if (added.path("special").asBoolean(false)) {
                specialIds.add(id);
            }
            maxId = Math.max(maxId, id);
        }
        return maxId;
    }

    /** A special token of tokenizer_config.json: a string, or an AddedToken object {"content": ...}. */
    static String specialToken(JsonNode config, String key) {
        if (config == null) {
            return null;
        }
        JsonNode value = config.get(key);
        if (value == null || value.isNull()) {
            return null;
        }
        if (value.isTextual()) {
            return value.asText();
        }
        JsonNode content = value.get("content");
        return content != null && content.isTextual() ? content.asText() : null;
    }

    @Override
    public String toString() {
        return "Tokenizer[vocabSize=" + vocabSize + ", bos=" + bosToken + ", eos=" + eosToken + "]";
    }
}
