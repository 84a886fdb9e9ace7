package dev.coil.server.telemetry;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.coil.engine.runner.EngineStats;
import dev.coil.server.TestServer;
import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.sdk.trace.data.SpanData;
import java.net.URI;
import java.net.http.HttpRequest;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The request's trace (gen_ai.* attributes, a queue, prefill and decode span per choice, the
 * caller's trace context honoured) and the metrics /metrics serves, counted against the responses.
 */
class TelemetryTest {

    private static TestServer server;

    @BeforeAll
    static void start() {
        server = TestServer.start();
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    @Test
    void chatRequestIsTracedWithGenAiAttributesAndPhaseSpansPerChoice() {
        String traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
        String callerSpan = "00f067aa0ba902b7";
        String body = server.send(HttpRequest.newBuilder(URI.create(server.url("/v1/chat/completions")))
                .POST(HttpRequest.BodyPublishers.ofString("""
                        {"messages": [{"role": "user", "content": "What is a package?"}], "max_tokens": 5,
                         "temperature": 0.5, "seed": 1, "n": 2}""")),
                "traceparent", "00-" + traceId + "-" + callerSpan + "-01").body();
        JsonNode response = TestServer.parse(body);

        List<SpanData> spans = server.spans().stream().filter(span -> span.getTraceId().equals(traceId)).toList();
        SpanData request = spans.stream().filter(span -> span.getKind() == SpanKind.SERVER).findFirst().orElseThrow();
        assertThat(request.getName()).isEqualTo("chat coil-demo");
        assertThat(request.getParentSpanId()).isEqualTo(callerSpan);
        var attributes = request.getAttributes();
        assertThat(attributes.get(AttributeKey.stringKey("gen_ai.operation.name"))).isEqualTo("chat");
        assertThat(attributes.get(AttributeKey.stringKey("gen_ai.request.model"))).isEqualTo("coil-demo");
        assertThat(attributes.get(AttributeKey.doubleKey("gen_ai.request.temperature"))).isEqualTo(0.5);
        assertThat(attributes.get(AttributeKey.longKey("gen_ai.request.max_tokens"))).isEqualTo(5);
        assertThat(attributes.get(AttributeKey.longKey("gen_ai.request.choice.count"))).isEqualTo(2);
        assertThat(attributes.get(AttributeKey.stringKey("gen_ai.response.id"))).isEqualTo(response.get("id").asText());
        assertThat(attributes.get(AttributeKey.longKey("gen_ai.usage.input_tokens")))
                .isEqualTo(response.at("/usage/prompt_tokens").asLong());
        assertThat(attributes.get(AttributeKey.longKey("gen_ai.usage.output_tokens")))
                .isEqualTo(response.at("/usage/completion_tokens").asLong());
        assertThat(attributes.get(AttributeKey.stringArrayKey("gen_ai.response.finish_reasons"))).hasSize(2);

        for (long choice = 0; choice < 2; choice++) {
            long index = choice;
            Map<String, SpanData> phases = new HashMap<>();
            spans.stream().filter(span -> request.getSpanId().equals(span.getParentSpanId()))
                    .filter(span -> span.getAttributes().get(AttributeKey.longKey("coil.choice.index")) == index)
                    .forEach(span -> phases.put(span.getName(), span));
            assertThat(phases).containsOnlyKeys("queue", "prefill", "decode");
            assertThat(phases.get("queue").getEndEpochNanos()).isEqualTo(phases.get("prefill").getStartEpochNanos());
            assertThat(phases.get("prefill").getEndEpochNanos()).isEqualTo(phases.get("decode").getStartEpochNanos());
            assertThat(phases.get("decode").getEndEpochNanos()).isGreaterThanOrEqualTo(phases.get("decode").getStartEpochNanos());
            assertThat(phases.get("queue").getStartEpochNanos()).isGreaterThanOrEqualTo(request.getStartEpochNanos());
        }
    }

    @Test
    void metricsCountWhatTheResponsesReport() {
        double promptBefore = server.metric("coil_prompt_tokens_total");
        double generatedBefore = server.metric("coil_generation_tokens_total");
        double finishedBefore = server.metric("gen_ai_server_request_duration_seconds_count");
        JsonNode response = server.postJson("/v1/completions",
                "{\"prompt\": \"Debian is\", \"max_tokens\": 7, \"temperature\": 0, \"ignore_eos\": true}");

        assertThat(server.metric("coil_prompt_tokens_total") - promptBefore)
                .isEqualTo(response.at("/usage/prompt_tokens").asDouble());
        assertThat(server.metric("coil_generation_tokens_total") - generatedBefore).isEqualTo(7.0);
        assertThat(server.metric("gen_ai_server_request_duration_seconds_count") - finishedBefore).isEqualTo(1.0);

        String metrics = server.get("/metrics").body();
        for (String name : List.of("gen_ai_server_time_to_first_token_seconds_bucket",
                "gen_ai_server_time_per_output_token_seconds_bucket", "coil_request_inter_token_latency_seconds_bucket",
                "gen_ai_server_request_duration_seconds_bucket", "coil_request_queue_time_seconds_bucket",
                "coil_request_prefill_time_seconds_bucket", "coil_request_decode_time_seconds_bucket",
                "coil_requests_running ", "coil_requests_waiting ", "coil_kv_blocks_in_use ", "coil_kv_blocks_capacity ",
                "coil_state_slots_in_use ", "coil_state_slots_capacity ", "coil_prefix_cache_queries_total ",
                "coil_prefix_cache_hits_total ", "coil_prefix_cache_hit_tokens_total ", "coil_preemptions_total ")) {
            assertThat(metrics).as(name).contains("\n" + name);
        }
        // The gauges read the serving engine's own stats: its capacities are not zero.
        assertThat(server.model().engine().stats().kvBlocksTotal()).isPositive();
        assertThat(server.metric("coil_kv_blocks_capacity")).isEqualTo(server.model().engine().stats().kvBlocksTotal());
        assertThat(server.metric("coil_state_slots_capacity"))
                .isEqualTo(server.model().engine().stats().stateSlotsTotal());
        assertThat(server.get("/metrics").headers().firstValue("Content-Type").orElseThrow()).startsWith("text/plain");
    }

    @Test
    void otlpExportIsOnOnlyWhenAnEndpointIsSet() {
        assertThat(Telemetry.defaults(Map.of())).containsEntry("otel.traces.exporter", "none")
                .containsEntry("otel.metrics.exporter", "none").containsEntry("otel.logs.exporter", "none")
                .containsEntry("otel.service.name", "coil");
        assertThat(Telemetry.defaults(Map.of("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")))
                .containsEntry("otel.traces.exporter", "otlp").containsEntry("otel.metrics.exporter", "otlp");
        assertThat(Telemetry.defaults(Map.of("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")))
                .containsEntry("otel.traces.exporter", "otlp").containsEntry("otel.metrics.exporter", "none");
    }

    @Test
    void environmentConfiguredTelemetryServesPrometheusText() {
        try (Telemetry telemetry = Telemetry.fromEnvironment()) {
            telemetry.observe(() -> new EngineStats(3, 4, 100, 10, 8, 2, 5, 1, 16, 40, 0, 0));
            String text = new String(telemetry.scrape(), StandardCharsets.UTF_8);
            assertThat(text).contains("coil_requests_running 3.0").contains("coil_requests_waiting 4.0")
                    .contains("coil_kv_blocks_in_use 10.0").contains("coil_prefix_cache_hit_tokens_total 16.0");
        }
    }
}
