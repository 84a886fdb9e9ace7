package dev.coil.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.server.api.ReasoningFormat;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Supplier;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.openqa.selenium.By;
import org.openqa.selenium.Dimension;
import org.openqa.selenium.Keys;
import org.openqa.selenium.OutputType;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.support.ui.WebDriverWait;

/**
 * The playground in a real headless Chromium (Debian's chromium and chromedriver, driven through
 * Selenium) against a real server on the demo model: streamed tokens show up one by one, Stop
 * makes the server cancel the request, the server's error text reaches the page, the token
 * counter agrees with /tokenize, the API key is asked for once. Without Chromium this test fails:
 * .ci/run installs it.
 */
class PlaygroundBrowserTest {

    private static final Path CHROMIUM = Path.of("/usr/bin/chromium");
    private static final Path CHROMEDRIVER = Path.of("/usr/bin/chromedriver");
    /**
     * Where the second chat turn's screenshot goes: the build folder, so that running the tests leaves the
     * checkout as it was; the README's picture with -Dcoil.playground.updateScreenshot=true.
     */
    private static final Path SCREENSHOT = Boolean.getBoolean("coil.playground.updateScreenshot")
            ? Path.of("..", "docs", "img", "playground.png")
            : Path.of("target", "playground.png");
    private static final Dimension WIDE = new Dimension(1280, 860);
    private static final Dimension SCREENSHOT_SIZE = new Dimension(1280, 1000);
    private static final String CANCELLED = "coil_requests_total{finish_reason=\"cancelled\"}";
    /** Generous: the first request also waits for the JIT to compile the kernels. */
    private static final Duration PATIENCE = Duration.ofSeconds(60);

    private static TestServer server;
    private static ChromeDriver browser;
    private static Path profile;

    @BeforeAll
    static void start() throws IOException {
        String install = "the playground test needs Debian's chromium and chromium-driver "
                + "(apt-get install chromium chromium-driver; .ci/run installs them)";
        assertThat(CHROMIUM).as(install).isExecutable();
        assertThat(CHROMEDRIVER).as(install).isExecutable();
        server = TestServer.start();
        // Compiles the kernels before the page's first request, so that its figures are the
        // steady ones (the README's screenshot shows them).
        server.postJson("/v1/completions", TestServer.JSON.createObjectNode().put("prompt", passKeyDocument())
                .put("max_tokens", 8).put("temperature", 0).toString());
        profile = Files.createTempDirectory("coil-chromium-");
        ChromeOptions options = new ChromeOptions();
        options.setBinary(CHROMIUM.toFile());
        // Headless as root in a sandboxed machine with no network beyond loopback.
        options.addArguments("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--user-data-dir=" + profile,
                "--window-size=" + WIDE.getWidth() + "," + WIDE.getHeight());
        ChromeDriverService service = new ChromeDriverService.Builder()
                .usingDriverExecutable(CHROMEDRIVER.toFile()).usingAnyFreePort().build();
        browser = new ChromeDriver(service, options);
    }

    @AfterAll
    static void stop() throws IOException {
        if (browser != null) {
            browser.quit();
        }
        if (server != null) {
            server.close();
        }
        if (profile != null) {
            try (var paths = Files.walk(profile)) {
                paths.sorted((a, b) -> b.getNameCount() - a.getNameCount()).forEach(path -> path.toFile().delete());
            }
        }
    }

    /** A fresh page with no remembered parameters, mode or key. */
    @BeforeEach
    void openPage() {
        browser.manage().window().setSize(WIDE);
        open(server);
    }

    @Test
    void tokensAppearOneByOneAsTheServerStreamsThem() {
        String text = "The Debian package manager";
        byId("mode-completion").click();
        setField("temperature", "0");
        setField("max_tokens", "40");
        check("ignore_eos");
        recordOutputLengths();

        WebElement prompt = byId("prompt");
        prompt.sendKeys(text);
        prompt.sendKeys(Keys.chord(Keys.CONTROL, Keys.ENTER));
        waitFor("the response to finish", () -> "done".equals(lastResponseState()));

        // The same request without streaming. Its prompt is shorter than one cache block, so it
        // computes everything again as the page's did, and greedy decoding gives the same tokens.
        JsonNode expected = server.postJson("/v1/completions", "{\"prompt\": \"" + text
                + "\", \"temperature\": 0, \"max_tokens\": 40, \"ignore_eos\": true}");
        assertThat(expected.at("/usage/prompt_tokens_details/cached_tokens").asInt()).isZero();
        String shown = lastOutput();
        assertThat(shown).isEqualTo(expected.at("/choices/0/text").asText()).isNotEmpty();

        List<Long> lengths = observedLengths();
        assertThat(lengths).as("output lengths the page showed while streaming").isSorted();
        assertThat(lengths.stream().filter(length -> length > 0).distinct().count())
                .as("distinct output lengths seen on the way to 40 tokens: %s", lengths)
                .isGreaterThanOrEqualTo(8);
        assertThat(lengths.getLast()).isEqualTo(shown.length());

        // The figures of this response: the engine's paths, TTFT, speeds, the prefix-cache hit.
        List<String> paths = new ArrayList<>();
        expected.get("paths").forEach(path -> paths.add(path.asText()));
        assertThat(paths).isNotEmpty();
        assertThat(chips("#paths .chip")).containsExactlyElementsOf(paths);
        assertThat(chips("#transcript .response .stats .chip")).containsExactlyElementsOf(paths);
        assertThat(byId("stat-ttft").getText()).matches("[0-9.,]+ m?s");
        assertThat(byId("stat-prefill").getText()).matches("[0-9.,]+ tok/s");
        assertThat(byId("stat-decode").getText()).matches("[0-9.,]+ tok/s");
        assertThat(byId("stat-tokens").getText()).contains("40 generated in");
        assertThat(byId("stat-finish").getText()).isEqualTo("length");
        assertThat(byId("prefix-request").getText()).matches("0 of [0-9]+ tokens cached");
        assertThat(byId("kv-blocks").getText()).matches("[0-9,]+ / [0-9,]+");
    }

    /**
     * A document chosen with the file button, a question, then a second turn: the page sends the
     * whole conversation again, and the server's prefix cache serves the part it has seen. The
     * page at the end is the README's screenshot.
     */
    @Test
    void aDocumentChatReusesItsPrefixOnTheNextTurn() throws IOException {
        Path file = profile.resolve("notes.txt");
        Files.writeString(file, passKeyDocument());
        setField("temperature", "0");
        setField("max_tokens", "24");
        byId("file-input").sendKeys(file.toAbsolutePath().toString());
        waitFor("the file in the box", () -> byId("prompt").getAttribute("value").contains("The pass key is"));
        WebElement prompt = byId("prompt");
        prompt.sendKeys("What is the pass key?");
        String firstQuestion = prompt.getAttribute("value");
        prompt.sendKeys(Keys.chord(Keys.CONTROL, Keys.ENTER));
        waitFor("the first answer", () -> "done".equals(lastResponseState()));
        String firstAnswer = lastOutput();

        String secondQuestion = "What is the pass key? Answer with the number.";
        prompt.sendKeys(secondQuestion);
        prompt.sendKeys(Keys.chord(Keys.CONTROL, Keys.ENTER));
        waitFor("the second answer", () -> browser.findElements(By.cssSelector("#transcript .response")).size() == 2
                && "done".equals(lastResponseState()));

        ObjectNode conversation = TestServer.JSON.createObjectNode();
        var messages = conversation.putArray("messages");
        messages.addObject().put("role", "user").put("content", firstQuestion);
        messages.addObject().put("role", "assistant").put("content", firstAnswer);
        messages.addObject().put("role", "user").put("content", secondQuestion);
        int promptTokens = tokenCount(conversation.toString());
        var cache = Pattern.compile("([0-9,]+) of ([0-9,]+) tokens cached").matcher(byId("prefix-request").getText());
        assertThat(cache.matches()).as(byId("prefix-request").getText()).isTrue();
        assertThat(Integer.parseInt(cache.group(2).replace(",", ""))).as("the whole conversation was sent")
                .isEqualTo(promptTokens);
        assertThat(Integer.parseInt(cache.group(1).replace(",", ""))).as("the first turn came from the cache")
                .isGreaterThan(promptTokens / 2).isLessThan(promptTokens);
        assertThat(browser.findElement(By.cssSelector("#transcript .message.user .fold")).getText())
                .as("the long message is folded").contains("more characters");

        waitFor("the cache panel after the second turn",
                () -> !byId("prefix-tokens").getText().startsWith("0 of"));
        browser.manage().window().setSize(SCREENSHOT_SIZE);
        Files.createDirectories(SCREENSHOT.getParent());
        Files.write(SCREENSHOT, browser.getScreenshotAs(OutputType.BYTES));
    }

    @Test
    void stopAbortsTheStreamAndTheServerCancelsTheRequest() {
        double cancelledBefore = server.metric(CANCELLED);
        byId("mode-completion").click();
        setField("max_tokens", "4000");
        check("ignore_eos");
        byId("prompt").sendKeys("The Debian package manager");
        // While tokens stream in, the page is busy enough that a WebDriver command can wait until the
        // stream is over; so the page itself presses Stop, from a watcher set before Send, as soon as
        // some tokens have arrived, and notes whether Stop could still be pressed then.
        browser.executeScript("""
                window.stopPressed = null;
                const watcher = new MutationObserver(() => {
                  const output = [...document.querySelectorAll('#transcript .response .output')].at(-1);
                  if (!output || output.textContent.length < 20) return;
                  watcher.disconnect();
                  const stop = document.getElementById('stop');
                  window.stopPressed = {enabled: !stop.disabled, shown: output.textContent.length};
                  stop.click();
                });
                watcher.observe(document.getElementById('transcript'),
                    {subtree: true, childList: true, characterData: true});
                """);
        byId("send").click();
        waitFor("the page to press Stop", () -> browser.executeScript("return window.stopPressed") != null);
        assertThat(browser.executeScript("return window.stopPressed.enabled"))
                .as("Stop was pressed while the response streamed").isEqualTo(true);
        waitFor("the page to mark the response stopped", () -> "stopped".equals(lastResponseState()));
        int shownAtStop = lastOutput().length();
        waitFor("the server to count a cancelled request", () -> server.metric(CANCELLED) == cancelledBefore + 1);
        assertThat(server.metric("coil_requests_running")).isZero();
        assertThat(lastOutput()).as("nothing arrives after Stop").hasSize(shownAtStop);
        assertThat(byId("stat-finish").getText()).startsWith("stopped");
        assertThat(byId("send").isEnabled()).isTrue();
        assertThat(byId("stop").isEnabled()).isFalse();
        // The cache panel reads /metrics again once the engine has let go of the request.
        waitFor("the cache panel to show the cancellation", () -> String.valueOf((long) (cancelledBefore + 1))
                .equals(byId("requests-cancelled").getAttribute("data-count")));
    }

    /** A JSON schema in the parameters holds the answer to it, as the same request to the API does. */
    @Test
    void aJsonSchemaHoldsTheAnswer() {
        String schema = "{\"type\": \"object\", \"properties\": {\"answer\": {\"type\": \"string\", "
                + "\"maxLength\": 12}}, \"required\": [\"answer\"]}";
        setField("temperature", "0");
        setField("json-schema", schema);
        byId("prompt").sendKeys("Hello");
        byId("send").click();
        waitFor("the response to finish", () -> "done".equals(lastResponseState()));

        JsonNode expected = server.postJson("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", "
                + "\"content\": \"Hello\"}], \"temperature\": 0, \"max_tokens\": 256, \"response_format\": "
                + "{\"type\": \"json_schema\", \"json_schema\": {\"name\": \"playground\", \"schema\": " + schema
                + "}}}");
        String shown = lastOutput();
        assertThat(shown).isEqualTo(expected.at("/choices/0/message/content").asText());
        assertThat(TestServer.parse(shown).get("answer").isTextual()).as(shown).isTrue();
        assertThat(byId("stat-finish").getText()).isEqualTo("stop");

        setField("json-schema", "{\"type\": ");
        byId("prompt").sendKeys("Hello");
        byId("send").click();
        waitFor("the error box", () -> byId("error").isDisplayed());
        assertThat(byId("error-message").getText()).contains("the schema is not JSON");
        assertThat(byId("error-detail").getText()).contains("parameter: response_format");
    }

    @Test
    void aBadParameterShowsTheServersErrorText() {
        setField("temperature", "-1");
        byId("prompt").sendKeys("Hello");
        byId("send").click();
        waitFor("the error box", () -> byId("error").isDisplayed());

        String answer = server.post("/v1/chat/completions",
                "{\"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}], \"temperature\": -1}").body();
        String message = TestServer.parse(answer).at("/error/message").asText();
        assertThat(message).contains("temperature");
        assertThat(byId("error-message").getText()).isEqualTo(message);
        assertThat(byId("error-title").getText()).contains("400");
        assertThat(byId("error-detail").getText()).contains("parameter: temperature");
        assertThat(browser.findElements(By.cssSelector("#transcript .message"))).as("no half-sent turn stays").isEmpty();
        assertThat(byId("prompt").getAttribute("value")).as("the draft comes back").isEqualTo("Hello");
    }

    @Test
    void theTokenCounterFollowsTypingAndDroppedFiles() {
        String window = String.format(Locale.US, "%,d", server.model().contextLength());
        byId("mode-completion").click();
        WebElement prompt = byId("prompt");
        prompt.sendKeys("The quick brown fox");
        int first = tokenCount("{\"prompt\": \"The quick brown fox\"}");
        waitFor("the counter to show " + first, () -> shownTokenCount() == first);
        assertThat(byId("token-count").getText()).contains("/ " + window + " tokens");

        prompt.sendKeys(" jumps over the lazy dog");
        String typed = "The quick brown fox jumps over the lazy dog";
        int second = tokenCount("{\"prompt\": \"" + typed + "\"}");
        assertThat(second).isGreaterThan(first);
        waitFor("the counter to show " + second, () -> shownTokenCount() == second);

        byId("mode-chat").click();
        int chat = tokenCount("{\"messages\": [{\"role\": \"user\", \"content\": \"" + typed + "\"}]}");
        assertThat(chat).isNotEqualTo(second);
        waitFor("the chat count " + chat, () -> shownTokenCount() == chat);

        // A long text file dropped on the box goes in at the cursor and is counted.
        String document = "The pass key is 73914. Remember it. ".repeat(300);
        browser.executeScript("""
                const transfer = new DataTransfer();
                transfer.items.add(new File([arguments[0]], 'notes.txt', {type: 'text/plain'}));
                document.getElementById('prompt').dispatchEvent(
                    new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));
                """, document);
        waitFor("the file in the box", () -> byId("prompt").getAttribute("value").contains(document));
        String content = byId("prompt").getAttribute("value");
        ObjectNode body = TestServer.JSON.createObjectNode();
        body.putArray("messages").addObject().put("role", "user").put("content", content);
        int withDocument = tokenCount(body.toString());
        assertThat(withDocument).isGreaterThan(1000);
        waitFor("the count with the file, " + withDocument, () -> shownTokenCount() == withDocument);
        assertThat(byId("attach-note").getText()).contains("notes.txt");
    }

    @Test
    void onANarrowScreenNothingSpillsSideways() {
        browser.manage().window().setSize(new Dimension(390, 844));
        open(server);
        long viewport = (Long) browser.executeScript("return document.documentElement.clientWidth");
        long content = (Long) browser.executeScript("return document.documentElement.scrollWidth");
        assertThat(content).isLessThanOrEqualTo(viewport);
        for (String id : List.of("prompt", "send", "stop", "temperature", "kv-blocks")) {
            WebElement element = byId(id);
            assertThat(element.getRect().getX() + element.getRect().getWidth()).as(id).isLessThanOrEqualTo((int) viewport);
        }
    }

    @Test
    void withAnApiKeyThePageAsksOnceAndKeepsTheKeyForTheTab() {
        String key = "playground-key";
        try (TestServer guarded = TestServer.start(ServerOptions.defaults("127.0.0.1", 0).withApiKey(key),
                TestServer.ENGINE_OPTIONS)) {
            browser.get(guarded.url("/"));
            waitFor("the key dialog", () -> byId("key-dialog").isDisplayed());
            byId("key-input").sendKeys(key + Keys.ENTER);
            waitFor("the model name", () -> "coil-demo".equals(byId("model-name").getText()));
            assertThat(browser.executeScript("return sessionStorage.getItem('coil.apiKey')")).isEqualTo(key);
            waitFor("a token count made with the key", () -> shownTokenCount() >= 0);

            browser.navigate().refresh();
            waitFor("the model name after a reload", () -> "coil-demo".equals(byId("model-name").getText()));
            assertThat(byId("key-dialog").isDisplayed()).as("asked only once").isFalse();
        }
    }

    /**
     * A server splitting off the model's reasoning (--reasoning-parser, a chat template that opens a
     * {@code <think>} block): the page shows the reasoning in a block of its own above the answer, the
     * text the API answers as {@code reasoning}, and nothing of it as the answer.
     */
    @Test
    void aChatAnswersReasoningShowsInItsOwnBlock() throws IOException {
        Path folder = Files.createTempDirectory("coil-thinking-");
        // Named as the demo model, which the page's loading check waits for.
        Path model = Files.createDirectory(folder.resolve("coil-demo"));
        try (TestServer thinking = TestServer.start(TestServer.writeThinkingModel(model),
                ServerOptions.defaults("127.0.0.1", 0).withReasoningParser(ReasoningFormat.THINK),
                TestServer.ENGINE_OPTIONS)) {
            open(thinking);
            byId("mode-chat").click();
            setField("temperature", "0");
            setField("max_tokens", "24");
            WebElement prompt = byId("prompt");
            prompt.sendKeys("Which is larger, 9.11 or 9.8?");
            prompt.sendKeys(Keys.chord(Keys.CONTROL, Keys.ENTER));
            waitFor("the response to finish", () -> "done".equals(lastResponseState()));

            JsonNode expected = thinking.postJson("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", "
                    + "\"content\": \"Which is larger, 9.11 or 9.8?\"}], \"temperature\": 0, \"max_tokens\": 24}")
                    .at("/choices/0/message");
            String shown = (String) browser.executeScript("return [...document.querySelectorAll("
                    + "'#transcript .response .reasoning-text')].at(-1)?.textContent ?? null");
            assertThat(shown).isEqualTo(expected.get("reasoning").asText()).isNotEmpty();
            assertThat(lastOutput()).isEmpty();
            assertThat(expected.get("content").isNull()).isTrue();
        } finally {
            try (var paths = Files.walk(folder)) {
                paths.sorted((a, b) -> b.getNameCount() - a.getNameCount()).forEach(path -> path.toFile().delete());
            }
        }
    }

    @Test
    void theSseParserReadsEventsCutAnywhere() {
        @SuppressWarnings("unchecked")
        List<String> parsed = (List<String>) browser.executeAsyncScript("""
                const done = arguments[arguments.length - 1];
                import('/js/sse.js').then(({SseParser}) => {
                  const wire = ': keep-alive\\r\\n\\r\\ndata: {"a":1}\\r\\n\\r\\nevent: x\\rdata: line1\\rdata: line2\\r\\r'
                      + 'data:no-space\\n\\ndata: é€😀\\n\\nid: 7\\ndata: [DONE]\\n\\ndata: unfinished';
                  const results = [];
                  for (const size of [1, 2, 3, 5, 7, 1000]) {
                    const parser = new SseParser();
                    const events = [];
                    for (let i = 0; i < wire.length; i += size) events.push(...parser.push(wire.slice(i, i + size)));
                    events.push(...parser.end());
                    results.push(JSON.stringify(events));
                  }
                  done(results);
                }, (error) => done([String(error)]));
                """);
        JsonNode expected = TestServer.parse("""
                [{"type": "message", "data": "{\\"a\\":1}", "id": ""},
                 {"type": "x", "data": "line1\\nline2", "id": ""},
                 {"type": "message", "data": "no-space", "id": ""},
                 {"type": "message", "data": "é€😀", "id": ""},
                 {"type": "message", "data": "[DONE]", "id": "7"}]
                """);
        assertThat(parsed).hasSize(6).allSatisfy(events -> assertThat(TestServer.parse(events)).isEqualTo(expected));
    }

    /** A response served with its context sharded shows "ring xN" as a chip whose tooltip explains it. */
    @Test
    void aRingPathShowsAsAChipThatExplainsIt() {
        @SuppressWarnings("unchecked")
        List<String> chips = (List<String>) browser.executeAsyncScript("""
                const done = arguments[arguments.length - 1];
                import('/js/transcript.js').then(({pathChips}) => {
                  const holder = document.createElement('div');
                  holder.append(pathChips(['ring x2', 'ssd-scan', 'ring x16']));
                  done([...holder.querySelectorAll('.chip')].map((chip) => chip.textContent + ' | ' + chip.title));
                }, (error) => done([String(error)]));
                """);
        assertThat(chips).containsExactly(
                "ring x2 | context sharded over 2 devices by ring attention (context parallelism)",
                "ssd-scan | chunked SSD scan over the prompt (Mamba-2 layers)",
                "ring x16 | context sharded over 16 devices by ring attention (context parallelism)");
    }

    /** The demo model's card with a pass key in the middle, as the model was trained to find them. */
    private static String passKeyDocument() throws IOException {
        String card = Files.readString(TestServer.DEMO_MODEL.resolve("MODEL_CARD.md"));
        String text = card.substring(0, Math.min(card.length(), 1500));
        int middle = text.indexOf('\n', text.length() / 2) + 1;
        return text.substring(0, middle) + "The pass key is 48213. Remember it. 48213 is the pass key.\n"
                + text.substring(middle);
    }

    // ---- page helpers ----

    private static void open(TestServer target) {
        browser.get(target.url("/"));
        assertThat(browser.getTitle()).as("the page at / (is coil-web with its coil/web/ files on the classpath?)")
                .isEqualTo("Coil playground");
        browser.executeScript("localStorage.clear(); sessionStorage.clear();");
        browser.navigate().refresh();
        waitFor("the page to load the model", () -> "coil-demo".equals(byId("model-name").getText()));
    }

    private static WebElement byId(String id) {
        return browser.findElement(By.id(id));
    }

    /** Sets a field as if typed, so that the page sees an input event. */
    private static void setField(String id, String value) {
        browser.executeScript("const field = arguments[0]; field.value = arguments[1];"
                + "field.dispatchEvent(new Event('input', {bubbles: true}));", byId(id), value);
    }

    private static void check(String id) {
        if (!byId(id).isSelected()) {
            byId(id).click();
        }
    }

    private static String lastResponseState() {
        return (String) browser.executeScript(
                "return [...document.querySelectorAll('#transcript .response')].at(-1)?.dataset.state ?? null");
    }

    private static String lastOutput() {
        return (String) browser.executeScript(
                "return [...document.querySelectorAll('#transcript .response .output')].at(-1)?.textContent ?? ''");
    }

    /** From now on, every change to the transcript records the length of the newest output. */
    private static void recordOutputLengths() {
        browser.executeScript("""
                window.observedLengths = [];
                new MutationObserver(() => {
                  const output = [...document.querySelectorAll('#transcript .response .output')].at(-1);
                  if (output) window.observedLengths.push(output.textContent.length);
                }).observe(document.getElementById('transcript'), {subtree: true, childList: true, characterData: true});
                """);
    }

    @SuppressWarnings("unchecked")
    private static List<Long> observedLengths() {
        return (List<Long>) browser.executeScript("return window.observedLengths");
    }

    private static List<String> chips(String selector) {
        return browser.findElements(By.cssSelector(selector)).stream().map(WebElement::getText).toList();
    }

    private static int shownTokenCount() {
        String count = byId("token-count").getAttribute("data-count");
        return count == null || count.isEmpty() ? -1 : Integer.parseInt(count);
    }

    private static int tokenCount(String tokenizeBody) {
        return server.postJson("/tokenize", tokenizeBody).get("count").asInt();
    }

    /** Waits for the condition; on timeout the message says what the page showed then. */
    private static void waitFor(String what, Supplier<Boolean> condition) {
        new WebDriverWait(browser, PATIENCE, Duration.ofMillis(20))
                .withMessage(() -> "waiting for " + what + "; the page shows " + pageSummary())
                .until(driver -> condition.get());
    }

    /** The newest response's state, its figures line and length, and the error box, for failure messages. */
    private static String pageSummary() {
        try {
            return String.valueOf(browser.executeScript("""
                    const response = [...document.querySelectorAll('#transcript .response')].at(-1);
                    const error = document.getElementById('error');
                    return JSON.stringify({responses: document.querySelectorAll('#transcript .response').length,
                      state: response?.dataset.state ?? null,
                      stats: response?.querySelector('.stats')?.textContent ?? null,
                      outputLength: response?.querySelector('.output')?.textContent.length ?? null,
                      sendEnabled: !document.getElementById('send').disabled,
                      error: error && !error.hidden ? error.textContent : null});
                    """));
        } catch (RuntimeException unreadable) {
            return "(the page could not be read: " + unreadable.getMessage() + ")";
        }
    }
}
