package dev.coil.server.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.Writer;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Iterator;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.Semaphore;

/**
 * Answers a batch file of OpenAI's batch format against a Coil server: each line a request
 * {@code {"custom_id", "method": "POST", "url", "body"}} for /v1/chat/completions, /v1/completions,
 * /v1/responses or /v1/messages, sent as the HTTP request it is, up to {@code inFlight} at once so that
 * the engine batches them; each answer one line {@code {"id", "custom_id", "response": {"status_code",
 * "request_id", "body"}, "error": null}}, in the input's order, written as soon as the lines before it
 * are. An API error is its status and error body, as OpenAI's batch output has it; a line that is not a
 * request (not JSON, no custom_id, another method or URL, {@code stream: true}) is a line with
 * {@code response} null and {@code error} {@code {"code", "message", "line"}}. No line stops the others.
 */
final class BatchRunner {

    static final Set<String> URLS = Set.of("/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages");
    private static final ObjectMapper JSON = new ObjectMapper();

    /** What a run did: lines read, answered with a 2xx, and not (an error status or a line that was no request). */
    record Summary(int lines, int succeeded, int failed, long outputTokens) {
    }

    private final URI server;
    private final int inFlight;
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(30)).build();

    /** @param server the server's base URL ({@code http://127.0.0.1:PORT}); @param inFlight requests sent at once */
    BatchRunner(URI server, int inFlight) {
        if (inFlight < 1) {
            throw new IllegalArgumentException("requests in flight must be at least 1, got " + inFlight);
        }
        this.server = server;
        this.inFlight = inFlight;
    }

    /** Answers every line of {@code lines} (blank ones skipped) into {@code out}, one result line each. */
    Summary run(Iterator<String> lines, Writer out) throws IOException, InterruptedException {
        OrderedLines ordered = new OrderedLines(out);
        Semaphore slots = new Semaphore(inFlight);
        int index = 0;
        int lineNumber = 0;
        while (lines.hasNext()) {
            String line = lines.next();
            lineNumber++;
            if (line.isBlank()) {
                continue;
            }
            int at = index++;
            Request request;
            try {
                request = Request.read(line);
            } catch (IllegalArgumentException e) {
                ordered.put(at, failed(customId(line), e.getMessage(), lineNumber), false, 0);
                continue;
            }
            slots.acquire();
            HttpRequest.Builder post = HttpRequest.newBuilder(server.resolve(request.url()))
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(request.body().toString()));
            int number = lineNumber;
            http.sendAsync(post.build(), HttpResponse.BodyHandlers.ofString()).whenComplete((response, error) -> {
                try {
                    if (error != null) {
                        ordered.put(at, failed(request.customId(), "the server did not answer: " + error.getMessage(),
                                number), false, 0);
                    } else {
                        ordered.put(at, answered(request.customId(), response), response.statusCode() / 100 == 2,
                                outputTokens(response));
                    }
                } finally {
                    slots.release();
                }
            });
        }
        slots.acquire(inFlight);
        ordered.finish(index);
        return ordered.summary(index);
    }

    /** One line of the input, read: its custom_id, its URL and its body. */
    record Request(String customId, String url, ObjectNode body) {

        static Request read(String line) {
            JsonNode node;
            try {
                node = JSON.readTree(line);
            } catch (JsonProcessingException e) {
                throw new IllegalArgumentException("the line is not JSON: " + e.getOriginalMessage());
            }
            if (!(node instanceof ObjectNode object)) {
                throw new IllegalArgumentException("the line is not a JSON object");
            }
            JsonNode customId = object.get("custom_id");
            if (customId == null || !customId.isTextual()) {
                throw new IllegalArgumentException("custom_id must be a string");
            }
            String method = object.path("method").asText("");
            if (!method.equals("POST")) {
                throw new IllegalArgumentException("method must be \"POST\", got " + object.get("method"));
            }
            String url = object.path("url").asText("");
            if (!URLS.contains(url)) {
                throw new IllegalArgumentException("url " + object.get("url") + " is not served in a batch; give one of "
                        + String.join(", ", URLS.stream().sorted().toList()));
            }
            if (!(object.get("body") instanceof ObjectNode body)) {
                throw new IllegalArgumentException("body must be a JSON object");
            }
            if (body.path("stream").asBoolean(false)) {
                throw new IllegalArgumentException("stream must not be true in a batch: each answer is written whole");
            }
            return new Request(customId.textValue(), url, body);
        }
    }

    /** The custom_id of a line that is no request, where it has one. */
    private static String customId(String line) {
        try {
            JsonNode id = JSON.readTree(line).get("custom_id");
            return id != null && id.isTextual() ? id.textValue() : null;
        } catch (JsonProcessingException | RuntimeException e) {
            return null;
        }
    }

    private static ObjectNode answered(String customId, HttpResponse<String> response) {
        ObjectNode line = head(customId);
        ObjectNode answer = line.putObject("response");
        answer.put("status_code", response.statusCode());
        JsonNode body;
        try {
            body = JSON.readTree(response.body());
        } catch (JsonProcessingException e) {
            body = JSON.getNodeFactory().textNode(response.body());
        }
        answer.put("request_id", body.path("id").isTextual() ? body.get("id").textValue() : newId("req_"));
        answer.set("body", body);
        line.putNull("error");
        return line;
    }

    private static ObjectNode failed(String customId, String message, int lineNumber) {
        ObjectNode line = head(customId);
        line.putNull("response");
        line.putObject("error").put("code", "invalid_request").put("message", message).put("line", lineNumber);
        return line;
    }

    private static ObjectNode head(String customId) {
        ObjectNode line = JSON.createObjectNode().put("id", newId("batch_req_"));
        line.put("custom_id", customId);
        return line;
    }

    private static String newId(String prefix) {
        return prefix + UUID.randomUUID().toString().replace("-", "");
    }

    /** The tokens an answer generated: chat's and completions' completion_tokens, the others' output_tokens. */
    private static long outputTokens(HttpResponse<String> response) {
        try {
            JsonNode usage = JSON.readTree(response.body()).path("usage");
            return usage.path("completion_tokens").asLong(usage.path("output_tokens").asLong(0));
        } catch (JsonProcessingException e) {
            return 0;
        }
    }

    /** Result lines put in any order, written in the input's: each as soon as every one before it is. */
    private static final class OrderedLines {
        private final Writer out;
        private final TreeMap<Integer, String> waiting = new TreeMap<>();
        private int next;
        private int succeeded;
        private int failed;
        private long outputTokens;
        private IOException writeError;

        OrderedLines(Writer out) {
            this.out = out;
        }

        synchronized void put(int index, ObjectNode line, boolean success, long tokens) {
            if (success) {
                succeeded++;
            } else {
                failed++;
            }
            outputTokens += tokens;
            waiting.put(index, line.toString());
            try {
                while (!waiting.isEmpty() && waiting.firstKey() == next) {
                    out.write(waiting.pollFirstEntry().getValue());
                    out.write('\n');
                    next++;
                }
            } catch (IOException e) {
                writeError = e;
            }
        }

        synchronized void finish(int lines) throws IOException {
            if (writeError != null) {
                throw writeError;
            }
            if (next != lines) {
                throw new IllegalStateException(lines - next + " result lines were never written");
            }
            out.flush();
        }

        synchronized Summary summary(int lines) {
            return new Summary(lines, succeeded, failed, outputTokens);
        }
    }
}
