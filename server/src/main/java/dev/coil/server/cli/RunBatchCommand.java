package dev.coil.server.cli;

import dev.coil.engine.runner.Devices;
import dev.coil.engine.runner.EngineOptions;
import dev.coil.server.CoilServer;
import dev.coil.server.ServedModel;
import dev.coil.server.ServerOptions;
import dev.coil.server.telemetry.Telemetry;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * vLLM's run-batch: a file of OpenAI batch requests answered into a file of results by the served
 * model, with no server to start or clients to write. The model is served as {@code serve} serves it
 * (the same flags), on a port of this machine's loopback only, for the run's lifetime; the requests go
 * to it as they are ({@link BatchRunner}), twice --max-seqs at a time, so that the engine batches them.
 */
@Command(name = "run-batch", mixinStandardHelpOptions = true,
        defaultValueProvider = ServingOptions.EngineDefaults.class,
        description = "Answer a file of OpenAI batch requests (JSON lines {custom_id, method, url, body} for "
                + "/v1/chat/completions, /v1/completions, /v1/responses or /v1/messages) into a file of result lines "
                + "{id, custom_id, response: {status_code, request_id, body}, error}, in the input's order, as vLLM's "
                + "run-batch does. Takes serve's model and engine flags.")
public final class RunBatchCommand implements Callable<Integer> {

    @Mixin
    ServingOptions serving;

    @Option(names = {"-i", "--input-file"}, paramLabel = "FILE_OR_URL", required = true,
            description = "The batch: a file, - for standard input, or an http(s) URL read with GET.")
    String input;

    @Option(names = {"-o", "--output-file"}, paramLabel = "FILE_OR_URL", required = true,
            description = "The results: a file, - for standard output, or an http(s) URL written with PUT once "
                    + "every line is answered.")
    String output;

    @Override
    public Integer call() throws Exception {
        Devices devices = serving.devices();
        EngineOptions engineOptions = serving.engineOptions(devices);
        ServerOptions serverOptions = ServerOptions.defaults("127.0.0.1", 0).withMaxBodyBytes(1L << 30)
                .withToolCallParser(serving.toolCallFormat()).withReasoningParser(serving.reasoningFormat())
                .withResponseStoreBytes(serving.responseStoreBytes());
        ServingOptions.Loading loading = serving.loading(devices, engineOptions);
        if (!output.equals("-") && !isUrl(output)) {
            Path folder = Path.of(output).toAbsolutePath().getParent();
            if (folder != null && !Files.isDirectory(folder)) {
                throw new IllegalArgumentException("--output-file: no folder " + folder);
            }
        }
        try (Lines lines = open(input)) {
            System.err.println("coil: run-batch: loading " + serving.modelOptions.description());
            ServedModel model = loading.load();
            CoilServer server = CoilServer.start(serverOptions, Telemetry.fromEnvironment());
            try {
                server.serve(model);
                BatchRunner runner = new BatchRunner(URI.create("http://127.0.0.1:" + server.port()),
                        2 * engineOptions.maxSequences());
                long start = System.nanoTime();
                BatchRunner.Summary summary = write(output, out -> runner.run(lines.iterator(), out));
                double seconds = (System.nanoTime() - start) / 1e9;
                System.err.printf("coil: run-batch: %d requests, %d answered, %d failed; %d tokens generated in %.1f s"
                        + " (%.1f tokens/s) on %s; results in %s%n", summary.lines(), summary.succeeded(),
                        summary.failed(), summary.outputTokens(), seconds, summary.outputTokens() / seconds,
                        model.engine().backendDescription(), output);
            } finally {
                server.shutdown();
            }
        }
        return 0;
    }

    /** The lines of a batch input, open until closed. */
    private record Lines(Stream<String> stream) implements AutoCloseable {
        Iterator<String> iterator() {
            return stream.iterator();
        }

        @Override
        public void close() {
            stream.close();
        }
    }

    /** Opens {@code source}: "-" standard input, an http(s) URL by GET, else a file. */
    private static Lines open(String source) throws IOException, InterruptedException {
        if (source.equals("-")) {
            return new Lines(new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8)).lines());
        }
        if (isUrl(source)) {
            HttpResponse<Stream<String>> response = HttpClient.newHttpClient().send(
                    HttpRequest.newBuilder(URI.create(source)).GET().build(), HttpResponse.BodyHandlers.ofLines());
            if (response.statusCode() / 100 != 2) {
                response.body().close();
                throw new IllegalArgumentException("--input-file: GET " + source + " answered " + response.statusCode());
            }
            return new Lines(response.body());
        }
        try {
            return new Lines(Files.lines(Path.of(source), StandardCharsets.UTF_8));
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException("--input-file: no file " + source);
        }
    }

    /** What writes the results into a writer. */
    private interface Results {
        BatchRunner.Summary into(Writer out) throws IOException, InterruptedException;
    }

    /** Writes the results to {@code target}: "-" standard output, an http(s) URL by PUT, else a file. */
    private static BatchRunner.Summary write(String target, Results results) throws IOException, InterruptedException {
        if (target.equals("-")) {
            Writer out = new OutputStreamWriter(System.out, StandardCharsets.UTF_8);
            BatchRunner.Summary summary = results.into(out);
            out.flush();
            return summary;
        }
        if (!isUrl(target)) {
            try (Writer out = Files.newBufferedWriter(Path.of(target), StandardCharsets.UTF_8)) {
                return results.into(out);
            }
        }
        Path file = Files.createTempFile("coil-batch-", ".jsonl");
        try {
            BatchRunner.Summary summary;
            try (Writer out = Files.newBufferedWriter(file, StandardCharsets.UTF_8)) {
                summary = results.into(out);
            }
            HttpResponse<String> response = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(target))
                    .header("Content-Type", "application/jsonl").PUT(HttpRequest.BodyPublishers.ofFile(file)).build(),
                    HttpResponse.BodyHandlers.ofString());
            if (response.statusCode() / 100 != 2) {
                throw new IOException("--output-file: PUT " + target + " answered " + response.statusCode());
            }
            return summary;
        } finally {
            Files.deleteIfExists(file);
        }
    }

    private static boolean isUrl(String value) {
        return value.startsWith("http://") || value.startsWith("https://");
    }
}
