package dev.coil.server.api;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * The Responses API's background responses still running, by id: what POST /v1/responses/{id}/cancel
 * cancels, and, for those streamed, their events ({@link BackgroundStream}), which are kept once
 * they end for the last {@value #ENDED_STREAMS_KEPT} within 64 MiB of event text. A response leaves once its last state (completed,
 * incomplete, cancelled or failed) is stored.
 */
public final class BackgroundResponses {

    /** How many ended responses' event streams are kept for clients that read them late, at most. */
    static final int ENDED_STREAMS_KEPT = 64;
    /** The event text those may hold together, at most (a stream longer than this alone is not kept). */
    static final long ENDED_STREAM_BYTES = 64L << 20;

    /** One running response: its engine requests, its events when streamed, and whether it was cancelled. */
    static final class Running {
        private final ChoiceSet choices;
        private final BackgroundStream stream;
        private final CountDownLatch stored = new CountDownLatch(1);
        private volatile boolean cancelled;

        Running(ChoiceSet choices, BackgroundStream stream) {
            this.choices = choices;
            this.stream = stream;
        }

        boolean cancelled() {
            return cancelled;
        }
    }

    private final Map<String, Running> running = new ConcurrentHashMap<>();
    /** The event streams of the last responses that ended, oldest first; guarded by itself. */
    private final Map<String, BackgroundStream> endedStreams = new LinkedHashMap<>();
    private final int streamsKept;
    private final long streamBytes;
    private long endedBytes;

    public BackgroundResponses() {
        this(ENDED_STREAMS_KEPT, ENDED_STREAM_BYTES);
    }

    /** Keeping at most {@code streamsKept} ended streams, of at most {@code streamBytes} of event text together. */
    BackgroundResponses(int streamsKept, long streamBytes) {
        this.streamsKept = streamsKept;
        this.streamBytes = streamBytes;
    }

    /** Registers response {@code id}, running {@code choices}, its events written to {@code stream} (or null). */
    Running start(String id, ChoiceSet choices, BackgroundStream stream) {
        Running entry = new Running(choices, stream);
        running.put(id, entry);
        return entry;
    }

    /** Response {@code id}'s last state is stored: it runs no more. */
    void ended(String id) {
        Running entry = running.get(id);
        if (entry != null) {
            if (entry.stream != null) {
                keepEnded(id, entry.stream);
            }
            running.remove(id);
            entry.stored.countDown();
        }
    }

    /** Keeps an ended stream, dropping the oldest kept while there are too many or their text is too long. */
    private void keepEnded(String id, BackgroundStream stream) {
        synchronized (endedStreams) {
            endedStreams.put(id, stream);
            endedBytes += stream.bytes();
            var oldest = endedStreams.entrySet().iterator();
            while (oldest.hasNext() && (endedStreams.size() > streamsKept || endedBytes > streamBytes)) {
                endedBytes -= oldest.next().getValue().bytes();
                oldest.remove();
            }
        }
    }

    /** The events of background response {@code id}, streamed, running or among the last ended; else null. */
    BackgroundStream stream(String id) {
        Running entry = running.get(id);
        if (entry != null && entry.stream != null) {
            return entry.stream;
        }
        synchronized (endedStreams) {
            return endedStreams.get(id);
        }
    }

    /**
     * Cancels response {@code id} and waits (a few seconds at most) for its cancelled state to be
     * stored; false when it is not running.
     */
    boolean cancel(String id) throws InterruptedException {
        Running entry = running.get(id);
        if (entry == null) {
            return false;
        }
        entry.cancelled = true;
        entry.choices.cancelAll();
        entry.stored.await(10, TimeUnit.SECONDS);
        return true;
    }
}
