package dev.coil.engine.load;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.coil.engine.tokenizer.Tokenizer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A model named on the Hub, against a local server that speaks the Hub's two routes as
 * huggingface_hub reads them: the revision's file list ({@code /api/models/ORG/NAME/revision/REV},
 * with each file's size, git blob hash and LFS sha256) and each file at a commit
 * ({@code /ORG/NAME/resolve/COMMIT/FILE}, the weights sent on by a redirect to another host, as the
 * Hub sends them to its storage). The repository holds the sharded test checkpoint with its tokenizer,
 * beside files Coil does not read.
 */
class HubModelTest {

    private static final String REPOSITORY = "test-org/tiny-hybrid";
    private static final String COMMIT = "0123456789abcdef0123456789abcdef01234567";
    private static final String TOKEN = "hf_secret";

    @TempDir
    Path cache;

    private HttpServer hub;
    private Path source;
    /** Files the repository holds, by name: their bytes. */
    private final Map<String, byte[]> files = new LinkedHashMap<>();
    /** Each request's path, with " (token)" where it carried the token. */
    private final List<String> requests = Collections.synchronizedList(new ArrayList<>());
    private final List<String> log = new ArrayList<>();
    /** A file the server sends other bytes for than it lists (null: none). */
    private String corrupted;
    /** A file whose next transfer the server cuts off halfway (null: none). */
    private String cutOff;
    /** Whether that transfer then stalls, its connection kept open and silent, rather than closing. */
    private boolean stallsAfterHalf;
    /** Shard transfers in flight at once, now and at the most. */
    private final java.util.concurrent.atomic.AtomicInteger inFlight = new java.util.concurrent.atomic.AtomicInteger();
    private final java.util.concurrent.atomic.AtomicInteger mostInFlight = new java.util.concurrent.atomic.AtomicInteger();
    /** Lets the storage's answers go once two shards are asked for at once (or after a second). */
    private final java.util.concurrent.CountDownLatch twoAsked = new java.util.concurrent.CountDownLatch(2);

    @BeforeEach
    void startHub() throws Exception {
        source = Path.of(HubModelTest.class.getResource("/fixtures/granitemoehybrid_sharded/config.json").toURI())
                .getParent();
        try (Stream<Path> listing = Files.list(source)) {
            for (Path file : listing.sorted().toList()) {
                if (!file.getFileName().toString().equals("expected.json")) {
                    files.put(file.getFileName().toString(), Files.readAllBytes(file));
                }
            }
        }
        // What a repository holds beside them, which Coil does not read.
        files.put("README.md", "# tiny".getBytes(StandardCharsets.UTF_8));
        files.put("pytorch_model.bin", new byte[64]);
        files.put("consolidated.safetensors", new byte[32]);
        files.put("onnx/model.onnx", new byte[16]);
        hub = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        hub.createContext("/", this::answer);
        hub.setExecutor(java.util.concurrent.Executors.newCachedThreadPool());
        hub.start();
    }

    @AfterEach
    void stopHub() {
        stop();
    }

    private boolean stopped;

    private void stop() {
        if (!stopped) {
            hub.stop(0);
            stopped = true;
        }
    }

    private HubModel.Settings settings(String token, boolean offline) {
        return new HubModel.Settings(URI.create("http://127.0.0.1:" + hub.getAddress().getPort()), cache, token,
                offline);
    }

    private Path resolve(String token, boolean offline) {
        return HubModel.resolve(REPOSITORY, null, settings(token, offline), log::add);
    }

    @Test
    void aModelIsDownloadedIntoTheHubCacheAndLoads() throws Exception {
        Path folder = resolve(TOKEN, false);

        Path repository = cache.resolve("models--test-org--tiny-hybrid");
        assertThat(folder).isEqualTo(repository.resolve("snapshots").resolve(COMMIT));
        assertThat(Files.readString(repository.resolve("refs/main"))).isEqualTo(COMMIT);
        try (Stream<Path> listing = Files.list(folder)) {
            assertThat(listing.map(path -> path.getFileName().toString()).sorted().toList())
                    .as("what Coil reads, and not the .bin, ONNX, README or the consolidated copy")
                    .containsExactlyElementsOf(files.keySet().stream()
                            .filter(name -> name.startsWith("model") || name.endsWith(".json")).sorted().toList());
        }
        for (String name : List.of("config.json", "model-00003-of-00007.safetensors")) {
            Path link = folder.resolve(name);
            assertThat(Files.isSymbolicLink(link)).isTrue();
            assertThat(link.getParent().resolve(Files.readSymbolicLink(link)).normalize().getParent())
                    .isEqualTo(repository.resolve("blobs"));
            assertThat(Files.readAllBytes(link)).isEqualTo(Files.readAllBytes(source.resolve(name)));
        }
        // Blobs are named as huggingface_hub names them: an LFS file by its sha256, another by its git hash.
        assertThat(repository.resolve("blobs").resolve(sha256(files.get("model-00001-of-00007.safetensors"))))
                .isRegularFile();
        assertThat(repository.resolve("blobs").resolve(gitHash(files.get("config.json")))).isRegularFile();

        try (Checkpoint checkpoint = ModelFolder.open(folder).openCheckpoint();
                Checkpoint original = ModelFolder.open(source).openCheckpoint();
                Tokenizer tokenizer = Tokenizer.loadFolder(folder)) {
            assertThat(checkpoint.names()).containsExactlyInAnyOrderElementsOf(original.names());
            assertThat(tokenizer.encode("hello world", false)).isNotEmpty();
        }
        assertThat(mostInFlight.get()).as("shards downloaded side by side").isGreaterThanOrEqualTo(2);
        assertThat(requests).as("the token goes to the Hub, not to the storage it sends the weights on to")
                .allMatch(request -> request.startsWith("/storage/") != request.endsWith("(token)"))
                .anyMatch(request -> request.startsWith("/storage/"));
    }

    /** What a server reads before it listens comes first; the weights follow at the full resolve. */
    @Test
    void theConfigurationComesBeforeTheWeights() throws Exception {
        Path folder = HubModel.resolveConfiguration(REPOSITORY, null, settings(null, false), log::add);
        assertThat(folder.resolve("config.json")).isRegularFile();
        assertThat(folder.resolve("tokenizer.json")).isRegularFile();
        assertThat(folder.resolve("model.safetensors.index.json")).isRegularFile();
        assertThat(requests).noneMatch(request -> request.endsWith(".safetensors"));
        assertThat(ConfigJson.read(folder.resolve("config.json")).path("model_type").asText()).isNotEmpty();

        requests.clear();
        assertThat(resolve(null, false)).isEqualTo(folder);
        assertThat(requests).as("only the weights are fetched now").noneMatch(request -> request.endsWith(".json"))
                .anyMatch(request -> request.endsWith(".safetensors"));
    }

    @Test
    void aSecondResolveDownloadsNothingAndTheCacheServesOfflineOrWithTheHubGone() throws Exception {
        Path folder = resolve(null, false);
        requests.clear();
        assertThat(resolve(null, false)).isEqualTo(folder);
        assertThat(requests).as("only the revision's file list is asked for")
                .containsExactly("/api/models/" + REPOSITORY + "/revision/main");

        requests.clear();
        assertThat(resolve(null, true)).isEqualTo(folder);
        assertThat(requests).isEmpty();

        // A snapshot whose links are gone (another revision's, sharing the blobs) links them again.
        Files.delete(folder.resolve("model-00002-of-00007.safetensors"));
        Files.delete(folder.resolve("config.json"));
        requests.clear();
        assertThat(resolve(null, false)).isEqualTo(folder);
        assertThat(requests).as("the blobs are there: nothing is downloaded")
                .containsExactly("/api/models/" + REPOSITORY + "/revision/main");
        assertThat(Files.readAllBytes(folder.resolve("model-00002-of-00007.safetensors")))
                .isEqualTo(files.get("model-00002-of-00007.safetensors"));

        stop();
        assertThat(resolve(null, false)).isEqualTo(folder);
        assertThat(log).anyMatch(line -> line.contains("could not be reached") && line.contains("cached copy"));
    }

    @Test
    void aFileThatDoesNotMatchItsHashIsRefusedAndLeftOut() throws Exception {
        corrupted = "model-00002-of-00007.safetensors";
        assertThatThrownBy(() -> resolve(null, false)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("model-00002-of-00007.safetensors does not match its sha256 on the Hub");
        Path snapshot = cache.resolve("models--test-org--tiny-hybrid/snapshots").resolve(COMMIT);
        assertThat(snapshot.resolve(corrupted)).doesNotExist();
        try (Stream<Path> blobs = Files.list(cache.resolve("models--test-org--tiny-hybrid/blobs"))) {
            assertThat(blobs.map(Path::toString)).noneMatch(name -> name.endsWith(".incomplete"));
        }
        assertThatThrownBy(() -> resolve(null, true)).as("an incomplete snapshot does not serve offline")
                .isInstanceOf(CheckpointException.class).hasMessageContaining("HF_HUB_OFFLINE");

        String refused = corrupted;
        corrupted = null;
        requests.clear();
        assertThat(resolve(null, false)).isEqualTo(snapshot);
        assertThat(requests).as("the files already there are not downloaded again")
                .contains("/storage/" + refused)
                .noneMatch(request -> request.endsWith("/config.json") || request.endsWith("/tokenizer.json")
                        || request.endsWith("/model-00001-of-00007.safetensors"));
        assertThat(Files.readAllBytes(snapshot.resolve(refused))).isEqualTo(files.get(refused));
    }

    /** A transfer cut off halfway leaves its part, and the next run asks for the rest by a range. */
    @Test
    void aDownloadCutOffGoesOnFromWhereItStopped() throws Exception {
        String name = "model-00001-of-00007.safetensors";
        cutOff = name;
        assertThatThrownBy(() -> resolve(null, false)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("Could not download " + REPOSITORY + "'s " + name)
                .hasMessageContaining("run again to go on from where it stopped");
        Path blobs = cache.resolve("models--test-org--tiny-hybrid/blobs");
        Path part = blobs.resolve(sha256(files.get(name)) + ".incomplete");
        assertThat(part).isRegularFile();
        long kept = Files.size(part);
        assertThat(kept).isPositive().isLessThan(files.get(name).length);

        requests.clear();
        Path folder = resolve(null, false);
        assertThat(requests).contains("range from " + kept);
        assertThat(Files.readAllBytes(folder.resolve(name))).isEqualTo(files.get(name));
        assertThat(part).doesNotExist();
    }

    /** The environment is read as huggingface_hub reads it. */
    @Test
    void theSettingsComeFromTheEnvironmentAsHuggingFaceHubReadsThem() throws Exception {
        Path home = cache.resolve("home");
        HubModel.Settings plain = HubModel.Settings.from(Map.of(), home);
        assertThat(plain.cache()).isEqualTo(home.resolve(".cache/huggingface/hub"));
        assertThat(plain.endpoint()).isEqualTo(URI.create("https://huggingface.co"));
        assertThat(plain.token()).isNull();
        assertThat(plain.offline()).isFalse();

        assertThat(HubModel.Settings.from(Map.of("XDG_CACHE_HOME", "/x"), home).cache()).isEqualTo(Path.of("/x/huggingface/hub"));
        assertThat(HubModel.Settings.from(Map.of("HF_HOME", "/h", "XDG_CACHE_HOME", "/x"), home).cache())
                .isEqualTo(Path.of("/h/hub"));
        assertThat(HubModel.Settings.from(Map.of("HF_HOME", "/h", "HF_HUB_CACHE", "/c"), home).cache())
                .isEqualTo(Path.of("/c"));
        assertThat(HubModel.Settings.from(Map.of("HF_ENDPOINT", "https://mirror.example/"), home).endpoint())
                .isEqualTo(URI.create("https://mirror.example"));
        for (String on : List.of("1", "true", "YES", "on")) {
            assertThat(HubModel.Settings.from(Map.of("HF_HUB_OFFLINE", on), home).offline()).as(on).isTrue();
        }
        assertThat(HubModel.Settings.from(Map.of("HF_HUB_OFFLINE", "0"), home).offline()).isFalse();

        // The token: HF_TOKEN, else the older name, else the file hf auth login writes (or HF_TOKEN_PATH).
        Files.createDirectories(home.resolve(".cache/huggingface"));
        Files.writeString(home.resolve(".cache/huggingface/token"), "hf_from_file\n");
        assertThat(HubModel.Settings.from(Map.of(), home).token()).isEqualTo("hf_from_file");
        Path elsewhere = Files.writeString(cache.resolve("token-elsewhere"), "hf_from_path");
        assertThat(HubModel.Settings.from(Map.of("HF_TOKEN_PATH", elsewhere.toString()), home).token())
                .isEqualTo("hf_from_path");
        assertThat(HubModel.Settings.from(Map.of("HUGGING_FACE_HUB_TOKEN", "hf_old"), home).token()).isEqualTo("hf_old");
        assertThat(HubModel.Settings.from(Map.of("HF_TOKEN", "hf_new", "HUGGING_FACE_HUB_TOKEN", "hf_old"), home).token())
                .isEqualTo("hf_new");
    }

    /** A transfer that stalls, its connection open and silent, is given up and goes on at the next start. */
    @Test
    void aStalledDownloadIsGivenUpAndGoesOnLater() throws Exception {
        String name = "model-00004-of-00007.safetensors";
        cutOff = name;
        stallsAfterHalf = true;
        long started = System.nanoTime();
        assertThatThrownBy(() -> HubModel.resolve(REPOSITORY, null, settings(null, false), log::add,
                java.time.Duration.ofSeconds(1)))
                .isInstanceOf(CheckpointException.class)
                .hasMessageContaining("Could not download " + REPOSITORY + "'s " + name)
                .hasMessageContaining("nothing came for 1 s");
        assertThat((System.nanoTime() - started) / 1e9).as("seconds to give up").isLessThan(10);
        Path part = cache.resolve("models--test-org--tiny-hybrid/blobs").resolve(sha256(files.get(name)) + ".incomplete");
        assertThat(Files.size(part)).isPositive();

        Path folder = resolve(null, false);
        assertThat(Files.readAllBytes(folder.resolve(name))).isEqualTo(files.get(name));
    }

    @Test
    void whatCannotBeHadIsSaidPlainly() {
        assertThatThrownBy(() -> HubModel.resolve("test-org/missing", null, settings(null, false), log::add))
                .isInstanceOf(CheckpointException.class)
                .hasMessageContaining("does not give test-org/missing (Repository Not Found)")
                .hasMessageContaining("HF_TOKEN");
        assertThatThrownBy(() -> HubModel.resolve("test-org/gated", null, settings(TOKEN, false), log::add))
                .isInstanceOf(CheckpointException.class)
                .hasMessageContaining("terms accepted on its page, https://huggingface.co/test-org/gated");
        assertThatThrownBy(() -> HubModel.resolve(REPOSITORY, "v9", settings(null, false), log::add))
                .isInstanceOf(CheckpointException.class).hasMessageContaining("no model " + REPOSITORY + " at revision v9");
        files.keySet().removeIf(name -> name.endsWith(".safetensors") || name.endsWith(".index.json"));
        assertThatThrownBy(() -> resolve(null, false)).isInstanceOf(CheckpointException.class)
                .hasMessageContaining("has no model.safetensors or model.safetensors.index.json on the Hub, the weights"
                        + " Coil reads (its weight files: onnx/model.onnx, pytorch_model.bin)");
        assertThatThrownBy(() -> HubModel.resolveConfiguration(REPOSITORY, null, settings(null, false), log::add))
                .as("found before a server listens").isInstanceOf(CheckpointException.class)
                .hasMessageContaining("has no model.safetensors");
        stop();
        assertThatThrownBy(() -> HubModel.resolve("test-org/other", null, settings(null, false), log::add))
                .isInstanceOf(CheckpointException.class).hasMessageContaining("Could not reach the Hugging Face Hub");
        assertThat(HubModel.isRepositoryName("ibm-granite/granite-4.0-h-350m")).isTrue();
        assertThat(HubModel.isRepositoryName("models/coil-demo/")).isFalse();
        assertThat(HubModel.isRepositoryName("/abs/path")).isFalse();
        assertThat(HubModel.isRepositoryName("../up")).isFalse();
    }

    private void answer(HttpExchange exchange) throws IOException {
        String path = exchange.getRequestURI().getRawPath();
        boolean token = ("Bearer " + TOKEN).equals(exchange.getRequestHeaders().getFirst("Authorization"));
        requests.add(path + (token ? " (token)" : ""));
        String api = "/api/models/";
        String resolve = "/" + REPOSITORY + "/resolve/" + COMMIT + "/";
        if (path.equals(api + REPOSITORY + "/revision/main")) {
            send(exchange, 200, fileList().getBytes(StandardCharsets.UTF_8));
        } else if (path.startsWith(api + "test-org/gated/")) {
            send(exchange, 403, "{\"error\": \"Access to model test-org/gated is restricted.\"}".getBytes(StandardCharsets.UTF_8));
        } else if (path.startsWith(api + REPOSITORY + "/revision/")) {
            send(exchange, 404, "{\"error\": \"Invalid rev id: v9\"}".getBytes(StandardCharsets.UTF_8));
        } else if (path.startsWith(api)) {
            send(exchange, 401, "{\"error\": \"Repository Not Found\"}".getBytes(StandardCharsets.UTF_8));
        } else if (path.startsWith(resolve) && files.containsKey(path.substring(resolve.length()))) {
            String name = path.substring(resolve.length());
            if (name.equals(cutOff)) {
                cutOff = null;
                exchange.getResponseHeaders().add("Location", "http://localhost:"
                        + cutOffStorage(files.get(name), stallsAfterHalf) + "/storage/" + name);
                send(exchange, 302, new byte[0]);
            } else if (name.endsWith(".safetensors")) {
                // The Hub's storage, on another host name: localhost instead of 127.0.0.1.
                exchange.getResponseHeaders().add("Location", "http://localhost:" + hub.getAddress().getPort()
                        + "/storage/" + name);
                send(exchange, 302, new byte[0]);
            } else {
                send(exchange, 200, files.get(name));
            }
        } else if (path.startsWith("/storage/") && files.containsKey(path.substring("/storage/".length()))) {
            String name = path.substring("/storage/".length());
            byte[] bytes = files.get(name).clone();
            if (name.equals(corrupted)) {
                bytes[bytes.length / 2] ^= 1;
            }
            String range = exchange.getRequestHeaders().getFirst("Range");
            if (range != null) {
                int from = Integer.parseInt(range.replaceAll("bytes=(\\d+)-", "$1"));
                requests.add("range from " + from);
                send(exchange, 206, java.util.Arrays.copyOfRange(bytes, from, bytes.length));
            } else {
                mostInFlight.accumulateAndGet(inFlight.incrementAndGet(), Math::max);
                twoAsked.countDown();
                try {
                    twoAsked.await(1, java.util.concurrent.TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                send(exchange, 200, bytes);
                inFlight.decrementAndGet();
            }
        } else {
            send(exchange, 404, "{\"error\": \"Entry not found\"}".getBytes(StandardCharsets.UTF_8));
        }
    }

    /**
     * A storage server for one request that promises {@code bytes} and closes the connection after
     * half of them, as a dropped connection ends a download; returns its port.
     */
    private static int cutOffStorage(byte[] bytes, boolean stall) throws IOException {
        java.net.ServerSocket server = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress());
        Thread.ofVirtual().start(() -> {
            try (server; java.net.Socket socket = server.accept()) {
                java.io.BufferedReader request = new java.io.BufferedReader(
                        new java.io.InputStreamReader(socket.getInputStream(), StandardCharsets.US_ASCII));
                for (String line = request.readLine(); line != null && !line.isEmpty(); line = request.readLine()) {
                    // the request's headers, read past
                }
                OutputStream out = socket.getOutputStream();
                out.write(("HTTP/1.1 200 OK\r\nContent-Length: " + bytes.length + "\r\n\r\n")
                        .getBytes(StandardCharsets.US_ASCII));
                out.write(bytes, 0, bytes.length / 2);
                out.flush();
                if (stall) {
                    Thread.sleep(15_000); // silent, the connection open, until the client gives up
                }
            } catch (IOException | InterruptedException ignored) {
                // the test sees what the client got
            }
        });
        return server.getLocalPort();
    }

    /** The revision's file list as the Hub's API gives it with blobs=true. */
    private String fileList() {
        ObjectMapper json = new ObjectMapper();
        ObjectNode info = json.createObjectNode().put("id", REPOSITORY).put("sha", COMMIT);
        ArrayNode siblings = info.putArray("siblings");
        for (Map.Entry<String, byte[]> file : files.entrySet()) {
            ObjectNode sibling = siblings.addObject().put("rfilename", file.getKey());
            boolean lfs = file.getKey().endsWith(".safetensors") || file.getKey().endsWith(".bin")
                    || file.getKey().endsWith(".onnx");
            sibling.put("size", lfs ? 134 : file.getValue().length);
            sibling.put("blobId", gitHash(lfs ? ("lfs pointer of " + file.getKey()).getBytes(StandardCharsets.UTF_8)
                    : file.getValue()));
            if (lfs) {
                sibling.putObject("lfs").put("sha256", sha256(file.getValue())).put("size", file.getValue().length)
                        .put("pointerSize", 134);
            }
        }
        return info.toString();
    }

    private static void send(HttpExchange exchange, int status, byte[] body) throws IOException {
        exchange.sendResponseHeaders(status, body.length == 0 ? -1 : body.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(body);
        }
    }

    private static String sha256(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }

    /** Git's blob hash: sha1 of "blob SIZE\0" and the bytes. */
    private static String gitHash(byte[] bytes) {
        try {
            MessageDigest sha1 = MessageDigest.getInstance("SHA-1");
            sha1.update(("blob " + bytes.length + "\0").getBytes(StandardCharsets.US_ASCII));
            return HexFormat.of().formatHex(sha1.digest(bytes));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }
}
