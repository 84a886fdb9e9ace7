package dev.coil.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.runner.EngineRequest;
import dev.coil.server.ServedModel;
import dev.coil.server.ServerState;
import io.javalin.http.Context;
import io.javalin.http.Handler;
import java.util.ArrayList;
import java.util.List;

/**
 * POST /v1/completions: prompts (text, token ids, or a batch) continued n times each. With echo the
 * prompt's text starts each choice; echo with logprobs scores the prompt too, and with max_tokens 0
 * that is all it does (vLLM's way of computing prompt logprobs); so does vLLM's prompt_logprobs.
 */
public final class CompletionsHandler implements Handler, BodyHandler {

    /** OpenAI's default max_tokens for completions. */
    static final int DEFAULT_MAX_TOKENS = 16;

    private final ServerState state;
    private final GenerationRunner runner;
    private final long maxBodyBytes;
    /** --reasoning-parser: the tags of the block a thinking budget ends; null without one. */
    private final ReasoningFormat reasoningParser;

    public CompletionsHandler(ServerState state, GenerationRunner runner, long maxBodyBytes,
            ReasoningFormat reasoningParser) {
        this.state = state;
        this.runner = runner;
        this.maxBodyBytes = maxBodyBytes;
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
        GenerationSettings settings = GenerationSettings.parse(fields,
                GenerationSettings.maxTokens(fields, "max_tokens", DEFAULT_MAX_TOKENS), model);
        boolean echo = fields.bool("echo", false);
        Integer logprobs = fields.integer("logprobs", 0, EngineRequest.MAX_TOP_LOGPROBS);
        Integer thinkingBudget = GenerationSettings.thinkingTokenBudget(fields, reasoningParser);
        int kept = GenerationSettings.promptTokensKept(fields, model.contextLength());
        List<CompletionPrompt> prompts = CompletionPrompt.parse(fields, model).stream()
                .map(prompt -> prompt.lastTokens(kept, model)).toList();

        int tokenLogprobs = logprobs == null ? -1 : logprobs;
        // vLLM's prompt_logprobs; echo with logprobs asks for them too, as in vLLM (a whole response's
        // choices carry them then; a stream sends them inside the echo's logprobs only).
        int promptField = settings.promptLogprobs() >= 0 ? settings.promptLogprobs()
                : echo && !settings.stream() ? tokenLogprobs : -1;
        int promptLogprobs = Math.max(echo ? tokenLogprobs : -1, promptField);
        List<ChoiceState> choices = new ArrayList<>();
        List<EngineRequest> requests = new ArrayList<>();
        for (int p = 0; p < prompts.size(); p++) {
            CompletionPrompt prompt = prompts.get(p);
            // A thinking budget where the text may reason (no grammar holds it from its first token),
            // counted from the first token where the prompt opens the block.
            GenerationSettings promptSettings = thinkingBudget == null || settings.sampling().grammar() != null
                    ? settings : settings.withThinkingBudget(thinkingBudget, reasoningParser,
                            reasoningParser.opensIn(prompt.text()));
            for (int c = 0; c < settings.choices(); c++) {
                choices.add(new ChoiceState(choices.size(), p, prompt.tokens(), echo ? prompt.text() : null));
                requests.add(promptSettings.request(prompt.tokens(), c, tokenLogprobs, promptLogprobs));
            }
        }
        runner.run(ctx, model, new CompletionShape(TokenSpelling.of(fields, model), tokenLogprobs, promptField),
                settings, choices, requests);
    }
}
