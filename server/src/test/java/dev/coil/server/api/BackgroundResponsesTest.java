package dev.coil.server.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import org.junit.jupiter.api.Test;

/** Ended streams are kept for late readers within a count and a size, the oldest dropped first. */
class BackgroundResponsesTest {

    /** A stream of {@code events} events of about 100 characters each, ended. */
    private static BackgroundStream stream(int events) throws IOException {
        BackgroundStream stream = new BackgroundStream();
        SseWriter writer = stream.writer();
        for (int i = 0; i < events; i++) {
            ObjectNode event = Json.object().put("sequence_number", i).put("text", "x".repeat(60));
            writer.event("response.output_text.delta", event);
        }
        writer.end();
        return stream;
    }

    @Test
    void endedStreamsAreKeptWithinACountAndASize() throws IOException {
        BackgroundStream one = stream(10);
        long size = one.bytes();
        assertThat(size).isBetween(10 * 2 * 100L, 10 * 2 * 150L);
        BackgroundResponses responses = new BackgroundResponses(3, 5 * size);
        responses.start("a", null, one);
        responses.ended("a");
        assertThat(responses.stream("a")).isSameAs(one);
        for (String id : new String[] {"b", "c", "d"}) {
            responses.start(id, null, stream(10));
            responses.ended(id);
        }
        assertThat(responses.stream("a")).as("the oldest, past the count").isNull();
        assertThat(responses.stream("b")).isNotNull();
        BackgroundStream large = stream(30); // three streams' worth: b, c, d and it take 6 > 5
        responses.start("e", null, large);
        assertThat(responses.stream("e")).as("running").isSameAs(large);
        responses.ended("e");
        assertThat(responses.stream("b")).as("dropped for size").isNull();
        assertThat(responses.stream("c")).as("dropped for size").isNull();
        assertThat(responses.stream("d")).isNotNull();
        assertThat(responses.stream("e")).isSameAs(large);
        responses.start("f", null, stream(60));
        responses.ended("f");
        assertThat(responses.stream("f")).as("larger than the whole size alone").isNull();
        assertThat(responses.stream("d")).isNull();
        assertThat(responses.stream("e")).isNull();
    }
}
