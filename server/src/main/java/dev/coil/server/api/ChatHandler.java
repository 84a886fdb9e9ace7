package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineRequest;
import dev.coil.engine.runner.OutputGrammar;
import dev.coil.engine.runner.SamplingParams;
import dev.coil.server.ServedModel;
import dev.coil.server.ServerState;
import io.javalin.http.Context;
import io.javalin.http.Handler;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * POST /v1/chat/completions: the conversation rendered through the model's chat template, answered
 * n times. logprobs (true/false) with top_logprobs (0 to 20) as OpenAI's chat API has them; tools and
 * tool_choice as {@link ToolCalls} reads them.
 */
public final class ChatHandler implements Handler, BodyHandler {

    private final ServerState state;
    private final GenerationRunner runner;
    private final long maxBodyBytes;
    private final ToolCallFormat toolCallParser;
    private final ReasoningFormat reasoningParser;

    /**
     * @param toolCallParser  the format tool_choice "auto" reads calls in, or null: "auto" is refused
     * @param reasoningParser the format of the model's reasoning, split off its answers; or null
     */
    public ChatHandler(ServerState state, GenerationRunner runner, long maxBodyBytes, ToolCallFormat toolCallParser,
            ReasoningFormat reasoningParser) {
        this.state = state;
        this.runner = runner;
        this.maxBodyBytes = maxBodyBytes;
        this.toolCallParser = toolCallParser;
        this.reasoningParser = reasoningParser;
    }

    @Override
    public void handle(Context ctx) throws Exception {
        state.ready();
        answer(ctx, JsonBody.read(ctx, maxBodyBytes));
    }

    @Override
    public void answer(Context ctx, ObjectNode body) throws Exception {
        ServedModel model = state.ready();
        Fields fields = new Fields(body);
        Prepared chat = prepare(fields, model, toolCallParser, reasoningParser);
        runner.run(ctx, model, chat.shape(), chat.settings(), chat.choices(), chat.requests());
    }

    /** What a chat request runs: its settings, its choices' engine requests, and how its choices look. */
    record Prepared(GenerationSettings settings, List<ChoiceState> choices, List<EngineRequest> requests,
            ResponseShape shape) {
    }

    /**
     * The chat request {@code fields} read for {@code model}: the conversation rendered, the sampling
     * settings, tools and grammar, and the shape of its choices. The Responses and Messages APIs read
     * their requests through this too, once written as the chat requests they stand for.
     */
    static Prepared prepare(Fields fields, ServedModel model, ToolCallFormat toolCallParser,
            ReasoningFormat reasoningParser) {
        int maxTokens = fields.has("max_completion_tokens")
                ? GenerationSettings.maxTokens(fields, "max_completion_tokens", SamplingParams.UNLIMITED_TOKENS)
                : GenerationSettings.maxTokens(fields, "max_tokens", SamplingParams.UNLIMITED_TOKENS);
        ToolCalls tools = ToolCalls.parse(fields, toolCallParser);
        GenerationSettings settings = GenerationSettings.parse(fields, maxTokens, model, tools);
        boolean logprobs = fields.bool("logprobs", false);
        Integer top = fields.integer("top_logprobs", 0, EngineRequest.MAX_TOP_LOGPROBS);
        // 0 asks for nothing, so it stands without logprobs (as vLLM takes it; clients send it by default).
        if (top != null && top > 0 && !logprobs) {
            throw ApiException.invalid("top_logprobs", "top_logprobs needs logprobs set to true");
        }
        String promptText = ChatPrompt.text(fields, model);
        int[] prompt = GenerationSettings.lastTokens(ChatPrompt.tokens(promptText, model, false),
                GenerationSettings.promptTokensKept(fields, model.contextLength()));

        // With a reasoning parser and a prompt that leaves the reasoning block open, a grammar holds
        // the answer after the block's end tag (vLLM's structured outputs with a reasoning parser);
        // else, and for calls that tool_choice forces, from the answer's first token, and the model
        // cannot reason before it.
        boolean reasoningOpen = reasoningParser != null && reasoningParser.opensIn(promptText);
        OutputGrammar grammar = settings.sampling().grammar();
        if (grammar != null && reasoningOpen && (tools == null || !tools.calls())) {
            settings = settings.withSampling(settings.sampling().withGrammar(grammar.after(reasoningParser.endTag())));
        }
        ReasoningFormat reasoning = grammar == null || reasoningOpen ? reasoningParser : null;
        // vLLM's thinking_token_budget, where the answer may reason: not held to a grammar from its first
        // token, nor a call that tool_choice forces.
        Integer thinkingBudget = GenerationSettings.thinkingTokenBudget(fields, reasoningParser);
        if (thinkingBudget != null && reasoning != null && (tools == null || !tools.calls())) {
            settings = settings.withThinkingBudget(thinkingBudget, reasoningParser, reasoningOpen);
        }
        int tokenLogprobs = logprobs ? (top == null ? 0 : top) : -1;
        List<ChoiceState> choices = new ArrayList<>();
        List<EngineRequest> requests = new ArrayList<>();
        for (int c = 0; c < settings.choices(); c++) {
            choices.add(new ChoiceState(c, 0, prompt, null));
            // vLLM's prompt_logprobs: the prompt is every choice's, so the first choice computes them.
            requests.add(settings.request(prompt, c, tokenLogprobs, c == 0 ? settings.promptLogprobs() : -1));
        }
        ChatShape chat = new ChatShape(TokenSpelling.of(fields, model), logprobs, settings.promptLogprobs());
        ResponseShape shape = chat;
        ToolCallFormat autoCalls = tools == null ? null : tools.autoFormat();
        if (tools != null && tools.calls()) {
            shape = new ToolCallShape(chat, tools);
        } else if (reasoning != null || autoCalls != null) {
            shape = new ReadChatShape(chat, reasoning, reasoningOpen, autoCalls,
                    tools == null ? Map.of() : tools.parameterProperties());
        }
        return new Prepared(settings, choices, requests, shape);
    }
}
