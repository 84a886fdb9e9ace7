package dev.coil.server.telemetry;

import dev.coil.engine.runner.EngineStats;
import dev.coil.engine.runner.SamplingParams;
import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.api.trace.propagation.W3CTraceContextPropagator;
import io.opentelemetry.context.propagation.ContextPropagators;
import io.opentelemetry.exporter.prometheus.PrometheusMetricReader;
import io.opentelemetry.sdk.OpenTelemetrySdk;
import io.opentelemetry.sdk.autoconfigure.AutoConfiguredOpenTelemetrySdk;
import io.opentelemetry.sdk.metrics.SdkMeterProvider;
import io.opentelemetry.sdk.resources.Resource;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.opentelemetry.sdk.trace.SpanProcessor;
import io.prometheus.metrics.config.EscapingScheme;
import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Supplier;

/**
 * The server's OpenTelemetry: metrics served in Prometheus text at /metrics (through the OTel
 * Prometheus reader), and traces. Everything else the standard OTEL_* variables configure through
 * the SDK's autoconfiguration; OTLP export of traces and metrics is on when an OTLP endpoint is set.
 */
public final class Telemetry implements AutoCloseable {

    public static final String PROMETHEUS_CONTENT_TYPE = PrometheusTextFormatWriter.CONTENT_TYPE;

    private final OpenTelemetrySdk sdk;
    private final PrometheusMetricReader prometheus;
    private final AtomicReference<Supplier<EngineStats>> stats = new AtomicReference<>(() -> null);
    private final Metrics metrics;
    private final Tracing tracing;
    private final PrometheusTextFormatWriter writer = PrometheusTextFormatWriter.create();

    private Telemetry(OpenTelemetrySdk sdk, PrometheusMetricReader prometheus) {
        this.sdk = sdk;
        this.prometheus = prometheus;
        this.metrics = new Metrics(sdk.getMeter("dev.coil.server"), () -> stats.get().get());
        this.tracing = new Tracing(sdk.getTracer("dev.coil.server"), sdk.getPropagators().getTextMapPropagator());
    }

    /** Configured from the OTEL_* environment variables and otel.* system properties. */
    public static Telemetry fromEnvironment() {
        PrometheusMetricReader prometheus = prometheusReader();
        OpenTelemetrySdk sdk = AutoConfiguredOpenTelemetrySdk.builder()
                .addPropertiesSupplier(() -> defaults(System.getenv()))
                .addMeterProviderCustomizer((builder, config) -> builder.registerMetricReader(prometheus))
                .disableShutdownHook()
                .build()
                .getOpenTelemetrySdk();
        return new Telemetry(sdk, prometheus);
    }

    /** Local only, with no export: spans go to {@code spans} (tests read them there). */
    public static Telemetry create(SpanProcessor spans) {
        PrometheusMetricReader prometheus = prometheusReader();
        Resource resource = Resource.getDefault().merge(Resource.builder().put("service.name", "coil").build());
        OpenTelemetrySdk sdk = OpenTelemetrySdk.builder()
                .setTracerProvider(SdkTracerProvider.builder().setResource(resource).addSpanProcessor(spans).build())
                .setMeterProvider(SdkMeterProvider.builder().setResource(resource).registerMetricReader(prometheus).build())
                .setPropagators(ContextPropagators.create(W3CTraceContextPropagator.getInstance()))
                .build();
        return new Telemetry(sdk, prometheus);
    }

    /** Metric names without the instrumentation scope label: this process has one scope. */
    private static PrometheusMetricReader prometheusReader() {
        return PrometheusMetricReader.builder().setOtelScopeLabelsEnabled(false).build();
    }

    /**
     * The autoconfiguration defaults, which OTEL_* variables override: service "coil"; traces and
     * metrics exported over OTLP (http/protobuf) only when an OTLP endpoint variable is set; no log export.
     */
    static Map<String, String> defaults(Map<String, String> environment) {
        boolean endpoint = environment.containsKey("OTEL_EXPORTER_OTLP_ENDPOINT");
        Map<String, String> defaults = new HashMap<>();
        defaults.put("otel.service.name", "coil");
        defaults.put("otel.exporter.otlp.protocol", "http/protobuf");
        defaults.put("otel.traces.exporter",
                endpoint || environment.containsKey("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") ? "otlp" : "none");
        defaults.put("otel.metrics.exporter",
                endpoint || environment.containsKey("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") ? "otlp" : "none");
        defaults.put("otel.logs.exporter", "none");
        return defaults;
    }

    public OpenTelemetry openTelemetry() {
        return sdk;
    }

    /** Where the engine gauges read from; the supplier returns null while there is no engine. */
    public void observe(Supplier<EngineStats> engineStats) {
        stats.set(engineStats);
    }

    /** Starts the telemetry of one generation request. */
    public RequestTelemetry startRequest(String operation, String model, SamplingParams sampling, int choices,
            Map<String, String> headers) {
        return new RequestTelemetry(metrics, tracing, tracing.startRequest(operation, model, sampling, choices, headers),
                model, choices);
    }

    /** Every metric now, in the Prometheus text format. */
    public byte[] scrape() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try {
            writer.write(out, prometheus.collect(), EscapingScheme.UNDERSCORE_ESCAPING);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    @Override
    public void close() {
        sdk.shutdown().join(5, TimeUnit.SECONDS);
    }
}
