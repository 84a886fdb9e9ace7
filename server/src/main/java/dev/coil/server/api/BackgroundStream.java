package dev.coil.server.api;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The streamed events of a background response ({@code background} and {@code stream}), kept as they
 * are written, so that any number of clients can read them, from the start or after a
 * {@code sequence_number}, while the response runs and after: the request that made it, and
 * GET /v1/responses/{id}?stream=true&amp;starting_after=N. A client that goes away stops reading; the
 * response runs on. The Responses API numbers its events from 0 in order, so event i is the one
 * whose sequence_number is i.
 */
final class BackgroundStream {

    /** Each event's SSE text ({@code event: ...\ndata: ...\n\n}), in order. */
    private final List<String> events = new ArrayList<>();
    private long bytes;
    private boolean ended;

    /** Where the answer writes its events: each flush of a written event publishes it; close ends the stream. */
    SseWriter writer() {
        return new SseWriter(new OutputStream() {
            private final ByteArrayOutputStream pending = new ByteArrayOutputStream();

            @Override
            public void write(int b) {
                pending.write(b);
            }

            @Override
            public void write(byte[] bytes, int offset, int length) {
                pending.write(bytes, offset, length);
            }

            @Override
            public void flush() {
                if (pending.size() > 0) {
                    publish(pending.toString(StandardCharsets.UTF_8));
                    pending.reset();
                }
            }

            @Override
            public void close() {
                flush();
                end();
            }
        });
    }

    private synchronized void publish(String event) {
        events.add(event);
        bytes += 2L * event.length();
        notifyAll();
    }

    /** What its events' text takes in memory, about: two bytes a character. */
    synchronized long bytes() {
        return bytes;
    }

    /** No more events: the answer has ended (its last event written, or cancelled or failed without one). */
    synchronized void end() {
        ended = true;
        notifyAll();
    }

    /**
     * Sends {@code client} the events after {@code startingAfter} (-1: all), each as soon as it is
     * written, a keep-alive comment after {@code keepAliveMillis} without one, and ends its response
     * once the stream has ended. A failed write (the client gone) is thrown; the response runs on.
     */
    void replay(SseWriter client, long startingAfter, long keepAliveMillis) throws IOException, InterruptedException {
        int next = (int) Math.max(0, Math.min(Integer.MAX_VALUE, startingAfter + 1));
        while (true) {
            String event;
            synchronized (this) {
                if (next >= events.size() && !ended) {
                    wait(keepAliveMillis);
                }
                if (next < events.size()) {
                    event = events.get(next);
                } else if (ended) {
                    break;
                } else {
                    event = null;
                }
            }
            if (event == null) {
                client.comment("keep-alive");
            } else {
                client.raw(event);
                next++;
            }
        }
        client.end();
    }
}
