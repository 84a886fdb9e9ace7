package dev.coil.engine.load;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Consumer;
import java.util.function.Predicate;
import java.util.regex.Pattern;

/**
 * A model on the Hugging Face Hub, named {@code organization/name} as vLLM's {@code --model} takes it,
 * resolved to a folder of the Hub's own cache: the layout huggingface_hub writes and reads
 * ({@code models--organization--name/} holding {@code blobs/} by hash, {@code snapshots/COMMIT/} of
 * links to them, and {@code refs/REVISION} naming the commit), so that a model downloaded by Python's
 * tools is found here and the other way round.
 *
 * <p>Only what Coil reads is downloaded: config.json, generation_config.json, the tokenizer's files,
 * the chat template, and the safetensors weights as {@link Checkpoint} reads them (model.safetensors,
 * else the shards that model.safetensors.index.json lists), never other .safetensors files (a
 * consolidated copy), PyTorch .bin, GGUF or ONNX copies. The weights come four files at a time, each
 * through {@link HubFileDownload}: checked against the size and hash the Hub lists for it before it is
 * moved in, so an interrupted download never leaves a file in a snapshot, and gone on with from its
 * part at the next start.
 *
 * <p>Online, the revision is asked of the Hub's API and the commit it names is used, downloading
 * only what its snapshot lacks; when the Hub cannot be reached, a complete snapshot of the revision
 * in the cache serves. Offline ({@code HF_HUB_OFFLINE=1}) only the cache is read.
 */
public final class HubModel {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern REPOSITORY = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*");
    private static final Pattern COMMIT = Pattern.compile("[0-9a-f]{40}");
    /** The files besides the weights that a model folder may hold and Coil reads. */
    private static final List<String> FOLDER_FILES = List.of(ModelFolder.CONFIG, ModelFolder.GENERATION_CONFIG,
            ModelFolder.TOKENIZER, ModelFolder.TOKENIZER_CONFIG, ModelFolder.SPECIAL_TOKENS_MAP,
            "chat_template.jinja", "chat_template.json", Checkpoint.INDEX_FILE);
    private static final int REDIRECTS = 10;
    /** A transfer that sends nothing for this long is given up, its part kept for the next start. */
    private static final Duration STALL_LIMIT = Duration.ofSeconds(60);
    /** Weight files downloaded at once. */
    private static final int PARALLEL_DOWNLOADS = 4;

    /**
     * Where the Hub is and how to reach it.
     *
     * @param endpoint the Hub's address ({@code HF_ENDPOINT}, else https://huggingface.co)
     * @param cache the Hub cache's folder ({@code HF_HUB_CACHE}, else {@code $HF_HOME/hub}, else
     *     {@code ~/.cache/huggingface/hub})
     * @param token an access token for private and gated models ({@code HF_TOKEN}, else the file
     *     {@code $HF_TOKEN_PATH} or {@code $HF_HOME/token} that {@code hf auth login} writes), or null
     * @param offline whether only the cache may be read ({@code HF_HUB_OFFLINE})
     */
    public record Settings(URI endpoint, Path cache, String token, boolean offline) {

        /** The settings huggingface_hub reads from the environment, read the same way. */
        public static Settings fromEnvironment() {
            return from(System.getenv(), Path.of(System.getProperty("user.home")));
        }

        /** The settings {@code environment} gives, {@code home} the user's home folder. */
        static Settings from(Map<String, String> environment, Path home) {
            String hfHomeVariable = environment.get("HF_HOME");
            String xdgCache = environment.get("XDG_CACHE_HOME");
            Path hfHome = hfHomeVariable != null && !hfHomeVariable.isBlank() ? Path.of(hfHomeVariable)
                    : (xdgCache != null && !xdgCache.isBlank() ? Path.of(xdgCache) : home.resolve(".cache"))
                            .resolve("huggingface");
            String hubCache = environment.get("HF_HUB_CACHE");
            Path cache = hubCache != null && !hubCache.isBlank() ? Path.of(hubCache) : hfHome.resolve("hub");
            String token = environment.get("HF_TOKEN");
            if (token == null || token.isBlank()) {
                token = environment.get("HUGGING_FACE_HUB_TOKEN");
            }
            String tokenPath = environment.get("HF_TOKEN_PATH");
            Path tokenFile = tokenPath != null && !tokenPath.isBlank() ? Path.of(tokenPath) : hfHome.resolve("token");
            if ((token == null || token.isBlank()) && Files.isRegularFile(tokenFile)) {
                try {
                    token = Files.readString(tokenFile).strip();
                } catch (IOException unreadable) {
                    token = null;
                }
            }
            String endpoint = environment.getOrDefault("HF_ENDPOINT", "https://huggingface.co");
            String offline = environment.getOrDefault("HF_HUB_OFFLINE", "");
            return new Settings(URI.create(endpoint.replaceAll("/+$", "")), cache,
                    token == null || token.isBlank() ? null : token.strip(),
                    Set.of("1", "true", "yes", "on").contains(offline.strip().toLowerCase(java.util.Locale.ROOT)));
        }
    }

    private final String repository;
    private final String revision;
    private final Settings settings;
    private final Consumer<String> log;
    private final Path repositoryFolder;
    /** How long a transfer may send nothing before it is given up (its part kept for the next start). */
    private final Duration stallLimit;
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(20))
            .followRedirects(HttpClient.Redirect.NEVER).build();

    private HubModel(String repository, String revision, Settings settings, Consumer<String> log, Duration stallLimit) {
        this.stallLimit = stallLimit;
        this.repository = repository;
        this.revision = revision;
        this.settings = settings;
        this.log = log;
        this.repositoryFolder = settings.cache().resolve("models--" + repository.replace("/", "--"));
    }

    /** Whether {@code spec} has the shape of a Hub repository's name, {@code organization/name}. */
    public static boolean isRepositoryName(String spec) {
        return spec != null && REPOSITORY.matcher(spec).matches() && !spec.contains("..");
    }

    /**
     * The folder of {@code repository} at {@code revision} (a branch, tag or commit; null for main) in
     * the Hub cache, downloading what it lacks.
     *
     * @param log told what is downloaded, and when the cache serves because the Hub cannot be reached
     * @throws CheckpointException when the model cannot be had: not on the Hub, a token needed or
     *     refused, no safetensors weights, the Hub unreachable with no complete copy cached, a file
     *     that does not match its hash
     */
    public static Path resolve(String repository, String revision, Settings settings, Consumer<String> log) {
        return of(repository, revision, settings, log, STALL_LIMIT).resolve(true);
    }

    /** {@link #resolve} with a transfer given up after {@code stallLimit} without bytes (for tests). */
    static Path resolve(String repository, String revision, Settings settings, Consumer<String> log,
            Duration stallLimit) {
        return of(repository, revision, settings, log, stallLimit).resolve(true);
    }

    /**
     * The folder of {@code repository} at {@code revision} with its config.json, tokenizer files and
     * the other small files in it, the weights not yet downloaded: what a server reads before it
     * listens, {@link #resolve} bringing the rest after.
     */
    public static Path resolveConfiguration(String repository, String revision, Settings settings,
            Consumer<String> log) {
        return of(repository, revision, settings, log, STALL_LIMIT).resolve(false);
    }

    private static HubModel of(String repository, String revision, Settings settings, Consumer<String> log,
            Duration stallLimit) {
        if (!isRepositoryName(repository)) {
            throw new CheckpointException("\"" + repository + "\" is not a Hugging Face model name (organization/name).");
        }
        return new HubModel(repository, revision == null || revision.isBlank() ? "main" : revision, settings, log,
                stallLimit);
    }

    private Path resolve(boolean withWeights) {
        if (settings.offline()) {
            return cachedSnapshot().orElseThrow(() -> new CheckpointException(repository + " at revision " + revision
                    + " is not in the Hugging Face cache (" + repositoryFolder + ") and HF_HUB_OFFLINE is set, so it"
                    + " is not downloaded."));
        }
        JsonNode info;
        try {
            try (InputStream body = get(apiUri(), 0, "the model's file list").body()) {
                info = JSON.readTree(body);
            }
        } catch (IOException unreachable) {
            Optional<Path> cached = cachedSnapshot();
            if (cached.isPresent()) {
                log.accept("coil: the Hugging Face Hub (" + settings.endpoint() + ") could not be reached ("
                        + (unreachable.getMessage() != null ? unreachable.getMessage() : unreachable)
                        + "); using the cached copy of " + repository + " at " + revision);
                return cached.get();
            }
            throw new CheckpointException("Could not reach the Hugging Face Hub (" + settings.endpoint() + ") for "
                    + repository + ", and the cache (" + repositoryFolder + ") has no complete copy of revision "
                    + revision + ": " + (unreachable.getMessage() != null ? unreachable.getMessage() : unreachable),
                    unreachable);
        }
        String commit = info.path("sha").asText("");
        if (!COMMIT.matcher(commit).matches()) {
            throw new CheckpointException("The Hugging Face Hub's answer for " + repository + " at " + revision
                    + " names no commit.");
        }
        Map<String, JsonNode> files = new LinkedHashMap<>();
        for (JsonNode sibling : info.path("siblings")) {
            files.put(sibling.path("rfilename").asText(), sibling);
        }
        Path snapshot = repositoryFolder.resolve("snapshots").resolve(commit);
        for (String name : FOLDER_FILES) {
            if (files.containsKey(name)) {
                fetch(commit, name, files.get(name), snapshot);
            }
        }
        if (!files.containsKey(ModelFolder.CONFIG)) {
            throw new CheckpointException(repository + " has no " + ModelFolder.CONFIG + " on the Hub: it is not a "
                    + "transformers model folder.");
        }
        List<String> weights = weightFiles(files::containsKey, snapshot);
        if (weights.isEmpty()) {
            throw new CheckpointException(repository + " has no " + Checkpoint.SINGLE_FILE + " or "
                    + Checkpoint.INDEX_FILE + " on the Hub, the weights Coil reads (its weight files: "
                    + otherWeights(files.keySet()) + ").");
        }
        if (!withWeights) {
            return snapshot;
        }
        for (String name : weights) {
            if (!files.containsKey(name)) {
                throw new CheckpointException(repository + "'s " + Checkpoint.INDEX_FILE + " names " + name
                        + ", which the repository does not hold.");
            }
        }
        fetchAll(commit, weights, files, snapshot);
        if (!revision.equals(commit)) {
            writeReference(commit);
        }
        return snapshot;
    }

    /**
     * The weight files to download, those {@link Checkpoint} reads: model.safetensors, else the shards
     * model.safetensors.index.json lists; none where the repository has neither.
     */
    private static List<String> weightFiles(Predicate<String> holds, Path snapshot) {
        if (holds.test(Checkpoint.SINGLE_FILE)) {
            return List.of(Checkpoint.SINGLE_FILE);
        }
        if (holds.test(Checkpoint.INDEX_FILE)) {
            return new ArrayList<>(indexShards(snapshot.resolve(Checkpoint.INDEX_FILE)));
        }
        return List.of();
    }

    private static Set<String> indexShards(Path index) {
        Set<String> shards = new LinkedHashSet<>();
        JsonNode weightMap = ConfigJson.read(index).path("weight_map");
        weightMap.forEach(shard -> shards.add(shard.asText()));
        if (shards.isEmpty()) {
            throw new CheckpointException(index + " has no weight_map naming the shards.");
        }
        return shards;
    }

    /** The repository's weight files of other kinds, a few of them by name, or "none" where it has none. */
    private static String otherWeights(Set<String> files) {
        List<String> weights = files.stream().filter(name -> List.of(".safetensors", ".bin", ".gguf", ".onnx", ".pt",
                ".pth", ".h5", ".msgpack").stream().anyMatch(name::endsWith)).sorted().toList();
        return weights.isEmpty() ? "none" : String.join(", ", weights.subList(0, Math.min(3, weights.size())))
                + (weights.size() > 3 ? " and " + (weights.size() - 3) + " more" : "");
    }

    /** The snapshot of the revision in the cache, when it holds config.json and all its weights. */
    private Optional<Path> cachedSnapshot() {
        String commit = revision;
        if (!COMMIT.matcher(revision).matches()) {
            Path reference = repositoryFolder.resolve("refs").resolve(revision);
            try {
                commit = Files.isRegularFile(reference) ? Files.readString(reference).strip() : null;
            } catch (IOException unreadable) {
                commit = null;
            }
        }
        if (commit == null || !COMMIT.matcher(commit).matches()) {
            return Optional.empty();
        }
        Path snapshot = repositoryFolder.resolve("snapshots").resolve(commit);
        if (!Files.isRegularFile(snapshot.resolve(ModelFolder.CONFIG))) {
            return Optional.empty();
        }
        try {
            List<String> weights = weightFiles(name -> Files.isRegularFile(snapshot.resolve(name)), snapshot);
            boolean complete = !weights.isEmpty()
                    && weights.stream().allMatch(name -> Files.isRegularFile(snapshot.resolve(name)));
            return complete ? Optional.of(snapshot) : Optional.empty();
        } catch (CheckpointException unreadable) {
            return Optional.empty();
        }
    }

    /**
     * Fetches the weight files, {@link #PARALLEL_DOWNLOADS} at a time (as huggingface_hub does, a
     * shard's single stream being slower than the link), each to its end whatever the others do; the
     * first failure is thrown once all have stopped, so that every file that could come is kept.
     */
    private void fetchAll(String commit, List<String> names, Map<String, JsonNode> files, Path snapshot) {
        if (names.size() == 1) {
            fetch(commit, names.getFirst(), files.get(names.getFirst()), snapshot);
            return;
        }
        List<Future<?>> downloads = new ArrayList<>();
        try (ExecutorService pool = Executors.newFixedThreadPool(Math.min(PARALLEL_DOWNLOADS, names.size()),
                Thread.ofPlatform().name("coil-hub-download-", 0).daemon().factory())) {
            for (String name : names) {
                downloads.add(pool.submit(() -> fetch(commit, name, files.get(name), snapshot)));
            }
        }
        RuntimeException first = null;
        for (Future<?> download : downloads) {
            try {
                download.get();
            } catch (ExecutionException e) {
                RuntimeException failure = e.getCause() instanceof RuntimeException runtime ? runtime
                        : new CheckpointException(String.valueOf(e.getCause()), e.getCause());
                if (first == null) {
                    first = failure;
                } else {
                    first.addSuppressed(failure);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new CheckpointException("Interrupted while downloading " + repository + ".", e);
            }
        }
        if (first != null) {
            throw first;
        }
    }

    /** Puts {@code name} into the snapshot, unless it is there (see {@link HubFileDownload}). */
    private void fetch(String commit, String name, JsonNode sibling, Path snapshot) {
        Path target = snapshot.resolve(name);
        if (Files.isRegularFile(target)) {
            return;
        }
        try {
            new HubFileDownload(repository + "'s " + name, sibling, log, stallLimit)
                    .into(target, repositoryFolder.resolve("blobs"), from -> get(resolveUri(commit, name), from, name));
        } catch (IOException e) {
            throw new CheckpointException("Could not download " + repository + "'s " + name + " from "
                    + settings.endpoint() + ": " + (e.getMessage() != null ? e.getMessage() : e)
                    + " (run again to go on from where it stopped)", e);
        }
    }

    private void writeReference(String commit) {
        Path reference = repositoryFolder.resolve("refs").resolve(revision);
        try {
            Files.createDirectories(reference.getParent());
            Files.writeString(reference, commit);
        } catch (IOException e) {
            throw new CheckpointException("Could not write " + reference + ": " + e.getMessage(), e);
        }
    }

    private URI apiUri() {
        return URI.create(settings.endpoint() + "/api/models/" + repository + "/revision/" + encode(revision)
                + "?blobs=true");
    }

    private URI resolveUri(String commit, String name) {
        StringBuilder path = new StringBuilder();
        for (String part : name.split("/")) {
            path.append('/').append(encode(part));
        }
        return URI.create(settings.endpoint() + "/" + repository + "/resolve/" + commit + path);
    }

    private static String encode(String part) {
        return URLEncoder.encode(part, StandardCharsets.UTF_8).replace("+", "%20");
    }

    /**
     * A GET from byte {@code from} on (a range where it is above 0), redirects followed; the token goes
     * to the Hub's own host only, not to the storage a download is sent on to. A status other than 200
     * or 206 is a CheckpointException that says what it means for the model.
     */
    private HttpResponse<InputStream> get(URI uri, long from, String what) throws IOException {
        URI current = uri;
        for (int hop = 0; hop <= REDIRECTS; hop++) {
            HttpRequest.Builder request = HttpRequest.newBuilder(current).timeout(Duration.ofMinutes(2)).GET()
                    .header("User-Agent", "coil");
            if (settings.token() != null && sameHost(current, settings.endpoint())) {
                request.header("Authorization", "Bearer " + settings.token());
            }
            if (from > 0) {
                request.header("Range", "bytes=" + from + "-");
            }
            HttpResponse<InputStream> response;
            try {
                response = http.send(request.build(), HttpResponse.BodyHandlers.ofInputStream());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted", e);
            }
            int status = response.statusCode();
            if (status == 200 || status == 206) {
                return response;
            }
            String message;
            try (InputStream body = response.body()) {
                message = new String(body.readNBytes(2000), StandardCharsets.UTF_8);
            }
            Optional<String> location = response.headers().firstValue("Location");
            if (status >= 300 && status < 400 && location.isPresent()) {
                current = current.resolve(location.get());
                continue;
            }
            throw new CheckpointException(refusal(status, errorOf(message), what));
        }
        throw new IOException("more than " + REDIRECTS + " redirects for " + uri);
    }

    private String refusal(int status, String error, String what) {
        String detail = error.isEmpty() ? "" : " (" + error + ")";
        return switch (status) {
            case 401 -> "The Hugging Face Hub does not give " + repository + detail + (settings.token() == null
                    ? " without a token: there is no such model, or it is private or gated (then set HF_TOKEN to a token"
                            + " of an account that may read it)."
                    : " to the token given (HF_TOKEN): there is no such model, or that token may not read it.");
            case 403 -> "The Hugging Face Hub refuses " + repository + " to this token" + detail + ": a gated model "
                    + "needs its terms accepted on its page, https://huggingface.co/" + repository + ", by the token's account.";
            case 404 -> "The Hugging Face Hub has no model " + repository + " at revision " + revision + detail + ".";
            default -> "The Hugging Face Hub answered " + status + " for " + repository + "'s " + what + detail + ".";
        };
    }

    /** The Hub's error message from a JSON body ({"error": "..."}), else the body's text, short. */
    private static String errorOf(String body) {
        try {
            JsonNode node = JSON.readTree(body);
            if (node != null && node.path("error").isTextual()) {
                return node.path("error").asText();
            }
        } catch (IOException notJson) {
            // the text itself, below
        }
        String text = body.strip();
        return text.length() > 200 ? text.substring(0, 200) + "..." : text;
    }

    private static boolean sameHost(URI a, URI b) {
        return a.getHost() != null && a.getHost().equalsIgnoreCase(b.getHost()) && a.getPort() == b.getPort();
    }
}
