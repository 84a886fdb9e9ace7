package dev.coil.engine.tokenizer;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
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
    /** Per id, the model vocabulary's spelling of the token (null for ids it lacks); null when the decoder is not read. */
    private final String[] spellings;
    /** The decoder's steps on one token, or null when it has a step {@link SpellingDecoder} does not read. */
    private final SpellingDecoder spellingDecoder;
    /** Per id, an added token's text (null for the model vocabulary's tokens). */
    private final String[] addedTexts;
    /** A token that decodes to one ASCII letter alone and after other tokens, or -1: text for a decode to follow. */
    private final int letterToken;

    private Tokenizer(HuggingFaceTokenizer tokenizer, Map<String, Integer> idOfToken, Set<Integer> specialIds,
            int vocabSize, String bosToken, String eosToken, String[] spellings, SpellingDecoder spellingDecoder,
            String[] addedTexts) {
        this.tokenizer = tokenizer;
        this.idOfToken = idOfToken;
        this.specialIds = specialIds;
        this.vocabSize = vocabSize;
        this.bosToken = bosToken;
        this.eosToken = eosToken;
        this.spellings = spellings;
        this.spellingDecoder = spellingDecoder;
        this.addedTexts = addedTexts;
        this.letterToken = findLetterToken();
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
        SpellingDecoder spellingDecoder = SpellingDecoder.of(root.path("decoder"));
        String[] spellings = spellingDecoder == null ? null : spellings(root.path("model").path("vocab"), maxId);
        return new Tokenizer(tokenizer, idOfToken, Set.copyOf(specialIds), maxId + 1,
                specialToken(tokenizerConfigOrNull, "bos_token"),
                specialToken(tokenizerConfigOrNull, "eos_token"), spellings, spellingDecoder, addedTexts);
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
     * The bytes token {@code id} adds to a text it follows, read from its spelling through the tokenizer's
     * decoder ({@link SpellingDecoder}): byte-level vocabularies (GPT-2's, as Granite, Bamba and Nemotron-H
     * models have) and SentencePiece-style ones ("▁" for a space, "&lt;0xE6&gt;" for a byte). Decoding the
     * token alone may not show them: a token holding part of a character's UTF-8 decodes to U+FFFD, and a
     * SentencePiece decoder drops a leading space at the start of a text. An added token's bytes are its
     * text's. Null when the decoder has a step not read, or for an id the tokenizer lacks.
     */
    public byte[] tokenBytes(int id) {
        if (spellings == null || id < 0 || id >= addedTexts.length) {
            return null;
        }
        if (addedTexts[id] != null) {
            return addedTexts[id].getBytes(StandardCharsets.UTF_8);
        }
        return spellings[id] == null ? null : spellingDecoder.bytes(spellings[id]);
    }

    /**
     * The text token {@code id} adds after other text: its {@link #tokenBytes} where they are whole
     * UTF-8 characters (" York" for a SentencePiece "▁York", which decodes alone to "York"); else, for a
     * token holding part of a character or bytes the decoder does not tell, its decoding alone (U+FFFD
     * for the part of a character).
     */
    public String tokenText(int id) {
        byte[] bytes = tokenBytes(id);
        if (bytes != null) {
            try {
                return StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(bytes)).toString();
            } catch (CharacterCodingException partOfACharacter) {
                // decoded alone below
            }
        }
        return decode(new int[] {id}, false);
    }

    /**
     * A token to decode ahead of others, so that they decode as they do after other text, or -1 when the
     * vocabulary has none: a token that is one ASCII letter, alone and after other tokens (the first
     * letter of the alphabet the vocabulary holds so). Its own text is that letter.
     */
    public int letterToken() {
        return letterToken;
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

    /** Per id, the model vocabulary's spelling: a BPE or WordPiece {"token": id} object, or Unigram's [[piece, score]]. */
    private static String[] spellings(JsonNode vocab, int maxId) {
        String[] spellings = new String[maxId + 1];
        if (vocab.isObject()) {
            for (var entry : vocab.properties()) {
                int id = entry.getValue().asInt();
                if (id >= 0 && id <= maxId) {
                    spellings[id] = entry.getKey();
                }
            }
        } else if (vocab.isArray()) {
            for (int id = 0; id < vocab.size() && id <= maxId; id++) {
                spellings[id] = vocab.get(id).path(0).asText();
            }
        }
        return spellings;
    }

    private int findLetterToken() {
        for (char letter = 'a'; letter <= 'z'; letter++) {
            Integer id = idOfToken.get(String.valueOf(letter));
            if (id != null && !specialIds.contains(id) && Arrays.equals(tokenBytes(id), new byte[] {(byte) letter})
                    && decode(new int[] {id}, false).equals(String.valueOf(letter))) {
                return id;
            }
        }
        return -1;
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
