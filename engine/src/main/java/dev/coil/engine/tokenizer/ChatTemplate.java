package dev.coil.engine.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.el.JinjavaInterpreterResolver;
import com.hubspot.jinjava.interpret.Context;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.expression.ExpressionStrategy;
import com.hubspot.jinjava.lib.filter.Filter;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import com.hubspot.jinjava.lib.tag.Tag;
import com.hubspot.jinjava.mode.ExecutionMode;
import com.hubspot.jinjava.objects.date.StrftimeFormatter;
import com.hubspot.jinjava.tree.Node;
import com.hubspot.jinjava.tree.TagNode;
import com.hubspot.jinjava.tree.output.RenderedOutputNode;
import com.hubspot.jinjava.tree.parse.ExpressionToken;
import java.io.IOException;
import java.lang.reflect.Method;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.ZonedDateTime;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import jinjava.javax.el.CompositeELResolver;

/**
 * A model's chat template: turns a conversation into the prompt text the model was trained on, as
 * transformers' {@code apply_chat_template(messages, add_generation_prompt=..., tokenize=False)} does.
 *
 * <p>The template is the Jinja source from the model folder (chat_template.jinja, or tokenizer_config.json's
 * {@code chat_template}). It is rendered with Jinjava set up the way transformers sets up Jinja:
 * {@code trim_blocks} and {@code lstrip_blocks} on, no trailing newline kept, the loop controls
 * ({@code break}, {@code continue}) and the {@code generation} block available, and the same globals:
 * {@code messages}, {@code add_generation_prompt}, the special tokens ({@code bos_token}, {@code eos_token},
 * ...), {@code raise_exception(message)}, {@code strftime_now(format)} and the {@code tojson} filter with
 * Python's spacing. Python string methods that templates call on message text ({@code strip},
 * {@code startswith}, {@code split}, ...) behave as in Python ({@link PythonStringMethods}).
 *
 * <p>The rendered text holds special tokens as text; encode it with {@code addSpecialTokens = false} unless
 * the template leaves BOS out and the tokenizer adds it (transformers encodes chat prompts with
 * {@code add_special_tokens=False}).
 *
 * <p>Immutable and thread-safe.
 */
public final class ChatTemplate {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String[] SPECIAL_TOKEN_KEYS = {
        "bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"
    };
    private static final Jinjava JINJAVA = newJinjava();
    /** The clock strftime_now reads, for the render in progress on this thread. */
    private static final ThreadLocal<Clock> RENDER_CLOCK = new ThreadLocal<>();

    private final String template;
    private final String sourceName;
    private final Map<String, String> specialTokens;
    private final Clock clock;

    private ChatTemplate(String adaptedTemplate, String sourceName, Map<String, String> specialTokens, Clock clock) {
        this.template = adaptedTemplate;
        this.sourceName = sourceName;
        this.specialTokens = specialTokens;
        this.clock = clock;
    }

    /**
     * The chat template of a model folder: chat_template.jinja when present (newer transformers save it
     * there), else tokenizer_config.json's {@code chat_template}. Special tokens come from
     * tokenizer_config.json.
     *
     * @throws IllegalArgumentException when the folder has no chat template (a base model)
     * @throws IOException when a file exists but cannot be read or parsed
     */
    public static ChatTemplate load(Path modelFolder) throws IOException {
        Path configFile = modelFolder.resolve("tokenizer_config.json");
        JsonNode config = tokenizerConfig(configFile);
        Path jinjaFile = modelFolder.resolve("chat_template.jinja");
        if (Files.isRegularFile(jinjaFile)) {
            return new ChatTemplate(JinjaSourceAdapter.adapt(Files.readString(jinjaFile)), jinjaFile.toString(),
                    specialTokens(config), Clock.systemDefaultZone());
        }
        if (config == null) {
            throw new IllegalArgumentException(modelFolder + " has no chat template (neither chat_template.jinja "
                    + "nor tokenizer_config.json); use a completion prompt instead");
        }
        return fromTokenizerConfig(config, configFile.toString());
    }

    /**
     * The template of a parsed tokenizer_config.json.
     *
     * @param sourceName where the config came from, for messages (for example its path)
     * @throws IllegalArgumentException when the config has no {@code chat_template}
     */
    public static ChatTemplate fromTokenizerConfig(JsonNode tokenizerConfig, String sourceName) {
        JsonNode node = tokenizerConfig.get("chat_template");
        String template = null;
        if (node != null && node.isTextual()) {
            template = node.asText();
        } else if (node != null && node.isArray()) {
            // Older multi-template form: [{"name": "default", "template": ...}, {"name": "tool_use", ...}].
            for (JsonNode named : node) {
                if ("default".equals(named.path("name").asText())) {
                    template = named.path("template").asText(null);
                }
            }
        }
        if (template == null) {
            throw new IllegalArgumentException(sourceName + " has no chat_template; use a completion prompt instead");
        }
        return new ChatTemplate(JinjaSourceAdapter.adapt(template), sourceName, specialTokens(tokenizerConfig),
                Clock.systemDefaultZone());
    }

    /**
     * A template given apart from the model (a server's --chat-template), with the special tokens of
     * the model folder's tokenizer_config.json where it has one.
     *
     * @param sourceName where the template came from, for messages (a file's path, or "--chat-template")
     * @throws IOException when tokenizer_config.json exists but cannot be read or parsed
     */
    public static ChatTemplate forModel(Path modelFolder, String template, String sourceName) throws IOException {
        JsonNode config = tokenizerConfig(modelFolder.resolve("tokenizer_config.json"));
        return new ChatTemplate(JinjaSourceAdapter.adapt(template), sourceName, specialTokens(config),
                Clock.systemDefaultZone());
    }

    /** A template given as text, with the BOS and EOS tokens it may refer to (either may be null). */
    public static ChatTemplate of(String template, String bosToken, String eosToken) {
        Map<String, String> tokens = new HashMap<>();
        if (bosToken != null) {
            tokens.put("bos_token", bosToken);
        }
        if (eosToken != null) {
            tokens.put("eos_token", eosToken);
        }
        return new ChatTemplate(JinjaSourceAdapter.adapt(template), "an inline template", Map.copyOf(tokens),
                Clock.systemDefaultZone());
    }

    /** The same template with {@code strftime_now} reading {@code clock} (tests pin the date). */
    ChatTemplate withClock(Clock clock) {
        return new ChatTemplate(template, sourceName, specialTokens, clock);
    }

    /**
     * Renders a conversation.
     *
     * @param addGenerationPrompt end with the header that starts the assistant's turn (for a request that
     *     asks the model to answer); false to render a finished conversation
     * @throws IllegalArgumentException when the template rejects the conversation through
     *     {@code raise_exception} (for example roles that do not alternate): "the chat template rejected the
     *     messages: " and the template's words
     * @throws IllegalStateException when the template uses something this renderer does not support; the
     *     message names the template's file
     */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt) {
        return render(messages, addGenerationPrompt, Map.of());
    }

    /** What transformers appends to the last message to find where it ends once rendered. */
    private static final String CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG ";

    /**
     * Renders a conversation whose last message the model is to continue, as transformers'
     * {@code apply_chat_template(..., continue_final_message=True)} does: the last message's content
     * gets a tag appended, the conversation is rendered without the generation prompt, and the text is
     * cut where the tag's last occurrence starts, so that nothing closing that turn follows. Where the
     * template trimmed the space that ends the tag, trailing whitespace before the cut goes too.
     *
     * @throws IllegalArgumentException when the template has no {@code content} field to continue, when
     *     the rendered conversation lacks the last message's text or the tag (a template that rewrites
     *     them), or as {@link #render}
     */
    public String renderContinuing(List<ChatMessage> messages, Map<String, ?> extraVariables) {
        if (!template.contains("content")) {
            throw new IllegalArgumentException("continue_final_message: the chat template has no content field "
                    + "to continue");
        }
        ChatMessage last = messages.getLast();
        List<ChatMessage> tagged = new ArrayList<>(messages.subList(0, messages.size() - 1));
        tagged.add(new ChatMessage(last.role(), last.content() + CONTINUE_TAG, last.fields()));
        String rendered = render(tagged, false, extraVariables);
        String tag = CONTINUE_TAG.strip();
        String text = PythonStringMethods.strip(last.content(), null, true, true);
        if (!rendered.contains(text) || !rendered.contains(tag)) {
            throw new IllegalArgumentException("continue_final_message: the final message does not appear in the "
                    + "conversation as the chat template renders it");
        }
        int at = rendered.lastIndexOf(tag);
        String before = rendered.substring(0, at);
        return rendered.startsWith(CONTINUE_TAG, at) ? before : PythonStringMethods.strip(before, null, false, true);
    }

    /**
     * Renders a conversation with more template variables, such as {@code tools}, {@code documents} or a
     * model-specific switch like {@code enable_thinking}; they override the standard ones of the same name.
     */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt, Map<String, ?> extraVariables) {
        List<Map<String, Object>> messageMaps = new ArrayList<>(messages.size());
        for (ChatMessage message : messages) {
            Map<String, Object> map = new LinkedHashMap<>();
            map.put("role", message.role());
            map.put("content", message.content());
            message.fields().forEach(map::putIfAbsent);
            messageMaps.add(map);
        }
        Map<String, Object> variables = new HashMap<>(specialTokens);
        variables.put("messages", messageMaps);
        variables.put("add_generation_prompt", addGenerationPrompt);
        variables.putAll(extraVariables);

        RenderResult result;
        RENDER_CLOCK.set(clock);
        try {
            result = JINJAVA.renderForResult(template, variables);
        } finally {
            RENDER_CLOCK.remove();
        }
        List<String> failures = new ArrayList<>();
        for (TemplateError error : result.getErrors()) {
            if (error.getSeverity() != TemplateError.ErrorType.FATAL) {
                continue;
            }
            TemplateRaisedException raised = raisedBy(error.getException());
            if (raised != null) {
                // The client's error: no server path in the message.
                throw new IllegalArgumentException("the chat template rejected the messages: " + raised.getMessage());
            }
            failures.add(error.getMessage() + " (template line " + error.getLineno() + ")");
        }
        if (!failures.isEmpty()) {
            throw new IllegalStateException("the chat template of " + sourceName + " could not be rendered: "
                    + String.join("; ", failures));
        }
        return result.getOutput();
    }

    @Override
    public String toString() {
        return "ChatTemplate[" + sourceName + "]";
    }

    /** The parsed tokenizer_config.json, or null where the folder has none. */
    private static JsonNode tokenizerConfig(Path configFile) throws IOException {
        if (!Files.isRegularFile(configFile)) {
            return null;
        }
        try {
            return JSON.readTree(configFile.toFile());
        } catch (IOException e) {
            throw new IOException(configFile + " is not valid JSON: " + e.getMessage(), e);
        }
    }

    /** The special tokens tokenizer_config.json names (none where config is null: no such file). */
    private static Map<String, String> specialTokens(JsonNode config) {
        Map<String, String> tokens = new HashMap<>();
        for (String key : SPECIAL_TOKEN_KEYS) {
            String value = Tokenizer.specialToken(config, key);
            if (value != null) {
                tokens.put(key, value);
            }
        }
        return Map.copyOf(tokens);
    }

    private static TemplateRaisedException raisedBy(Throwable error) {
        for (Throwable t = error; t != null; t = t.getCause()) {
            if (t instanceof TemplateRaisedException raised) {
                return raised;
            }
        }
        return null;
    }

    private static Jinjava newJinjava() {
        CompositeELResolver resolver = new CompositeELResolver();
        resolver.add(new PythonStringMethods());
        resolver.add(JinjavaInterpreterResolver.DEFAULT_RESOLVER_READ_ONLY);
        JinjavaConfig config = JinjavaConfig.newBuilder()
                .withTrimBlocks(true)
                .withLstripBlocks(true)
                .withLegacyOverrides(LegacyOverrides.newBuilder()
                        .withIterateOverMapKeys(true)
                        .withEvaluateMapKeys(true)
                        .withUsePyishObjectMapper(true)
                        .withUseNaturalOperatorPrecedence(true)
                        .withParseWhitespaceControlStrictly(true)
                        .withUseTrimmingForNotesAndExpressions(true)
                        .withKeepNullableLoopValues(true)
                        .build())
                .withElResolver(resolver)
                .withExecutionMode(new PythonOutputMode())
                // Message text that contains "{{" must stay text, not be rendered as a template.
                .withNestedInterpretationEnabled(false)
                .withLocale(Locale.ROOT)
                .build();
        Jinjava jinjava = new Jinjava(config);
        var globals = jinjava.getGlobalContext();
        globals.registerFunction(new ELFunctionDefinition("", "raise_exception", method("raiseException")));
        globals.registerFunction(new ELFunctionDefinition("", "strftime_now", method("strftimeNow")));
        globals.registerFilter(new ToJsonFilter());
        globals.registerTag(new GenerationTag());
        return jinjava;
    }

    private static Method method(String name) {
        try {
            Method method = ChatTemplate.class.getDeclaredMethod(name, String.class);
            method.setAccessible(true);
            return method;
        } catch (NoSuchMethodException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The template's {@code raise_exception(message)}. */
    private static Object raiseException(String message) {
        throw new TemplateRaisedException(Objects.toString(message));
    }

    /** The template's {@code strftime_now(format)}: the current local time in a C-style format. */
    private static String strftimeNow(String format) {
        Clock clock = Objects.requireNonNullElse(RENDER_CLOCK.get(), Clock.systemDefaultZone());
        return StrftimeFormatter.format(ZonedDateTime.now(clock), format, Locale.US);
    }

    /** Thrown by {@code raise_exception}; Jinjava wraps it, {@link #render} finds it in the cause chain. */
    private static final class TemplateRaisedException extends RuntimeException {
        TemplateRaisedException(String message) {
            super(message, null, false, false);
        }
    }

    /** {@code value | tojson(indent=None)} as transformers defines it (Python json.dumps, non-ASCII kept). */
    private static final class ToJsonFilter implements Filter {
        @Override
        public String getName() {
            return "tojson";
        }

        @Override
        public Object filter(Object value, JinjavaInterpreter interpreter, String... args) {
            Integer indent = args.length > 0 && args[0] != null ? Integer.valueOf(args[0]) : null;
            return PythonJson.dumps(value, indent, false);
        }

        @Override
        public Object filter(Object value, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
            Object indent = kwargs.containsKey("indent") ? kwargs.get("indent") : args.length > 0 ? args[0] : null;
            boolean sortKeys = Boolean.TRUE.equals(kwargs.get("sort_keys"));
            return PythonJson.dumps(value, indent instanceof Number n ? n.intValue() : null, sortKeys);
        }
    }

    /** Prints {@code {{ flag }}} as Python does, "True"/"False"; everything else as Jinjava does. */
    private static final class PythonOutputMode implements ExecutionMode {
        @Override
        public void prepareContext(Context context) {
            context.setExpressionStrategy(new PythonBooleanOutput());
        }
    }

    private static final class PythonBooleanOutput implements ExpressionStrategy {
        @Override
        public RenderedOutputNode interpretOutput(ExpressionToken expression, JinjavaInterpreter interpreter) {
            Object value = interpreter.resolveELExpression(expression.getExpr(), expression.getLineNumber());
            String text = value instanceof Boolean b ? (b ? "True" : "False") : interpreter.getAsString(value);
            return new RenderedOutputNode(text);
        }
    }

    /** transformers' {@code {% generation %}...{% endgeneration %}} marks assistant text; it renders its body. */
    private static final class GenerationTag implements Tag {
        @Override
        public String getName() {
            return "generation";
        }

        @Override
        public String interpret(TagNode tagNode, JinjavaInterpreter interpreter) {
            StringBuilder out = new StringBuilder();
            for (Node child : tagNode.getChildren()) {
                out.append(child.render(interpreter).getValue());
            }
            return out.toString();
        }
    }
}
