package dev.coil.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import io.javalin.http.Context;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Server-Sent Events on an HTTP response: {@code data: <json>} events (named ones too), {@code :
 * comment} lines for keep-alive, and the closing {@code data: [DONE]}. Each event is flushed to the client at once; a
 * failed write means the client is gone (IOException).
 */
final class SseWriter {

    private final OutputStream out;
    private long lastSendNanos = System.nanoTime();

    SseWriter(Context ctx) throws IOException {
        ctx.status(200);
        ctx.res().setContentType("text/event-stream;charset=utf-8");
        ctx.res().setHeader("Cache-Control", "no-cache");
        ctx.res().setHeader("X-Accel-Buffering", "no");
        this.out = ctx.res().getOutputStream();
    }

    /** Events written to {@code out} (a background response's {@link BackgroundStream}), no HTTP around them. */
    SseWriter(OutputStream out) {
        this.out = out;
    }

    /** Sends the status and headers now, before the first event. */
    void open() throws IOException {
        out.flush();
        lastSendNanos = System.nanoTime();
    }

    void data(JsonNode event) throws IOException {
        send("data: " + Json.write(event) + "\n\n");
    }

    /** An event with a name ({@code event: <name>}), as the Responses API sends its typed events. */
    void event(String name, JsonNode data) throws IOException {
        send("event: " + name + "\ndata: " + Json.write(data) + "\n\n");
    }

    /** An event already in SSE form ({@code event: ...\ndata: ...\n\n}), as a {@link BackgroundStream} keeps it. */
    void raw(String eventText) throws IOException {
        send(eventText);
    }

    /** A comment line, which clients ignore; it keeps proxies and idle timeouts from closing the stream. */
    void comment(String text) throws IOException {
        send(": " + text + "\n\n");
    }

    /** Milliseconds since the last event or comment was sent (or the headers, before any). */
    long quietMillis() {
        return (System.nanoTime() - lastSendNanos) / 1_000_000;
    }

    /**
     * The closing event, and the end of the response: the stream is closed here, so that the chunked
     * body's last chunk is written before the handler returns. A shutdown that waits for handlers
     * would otherwise stop the server before Jetty ended the response, and the client's read of the
     * events it was sent could fail on the cut connection.
     */
    void done() throws IOException {
        send("data: [DONE]\n\n");
        end();
    }

    /** The end of the response without [DONE] (the Responses API's streams end with their last event). */
    void end() throws IOException {
        out.close();
    }

    private void send(String text) throws IOException {
        out.write(text.getBytes(StandardCharsets.UTF_8));
        out.flush();
        lastSendNanos = System.nanoTime();
    }
}
