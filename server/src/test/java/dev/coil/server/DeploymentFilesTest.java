package dev.coil.server;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * What can be checked of the Docker deployment without a Docker engine: the Dockerfile's documented
 * commands are the README's, everything it copies exists, base images are pinned, the entry point
 * runs what ./coil runs, and the compose file's config files exist. (.ci/run also lints the
 * Dockerfile with dockerfile-utils.)
 */
class DeploymentFilesTest {

    private static final Path ROOT = findRoot();
    private static final Pattern DOCKER_COMMAND = Pattern.compile("(docker (?:build|run) [^\\n#`]*?)\\s*(?:$|#)",
            Pattern.MULTILINE);

    private static Path findRoot() {
        Path dir = Path.of("").toAbsolutePath();
        while (dir != null && !Files.exists(dir.resolve("Dockerfile"))) {
            dir = dir.getParent();
        }
        if (dir == null) {
            throw new IllegalStateException("no Dockerfile above " + Path.of("").toAbsolutePath());
        }
        return dir;
    }

    private static String read(String file) throws IOException {
        return Files.readString(ROOT.resolve(file));
    }

    /** Joins continuation lines so each instruction is one line. */
    private static List<String> instructions() throws IOException {
        List<String> out = new ArrayList<>();
        StringBuilder current = new StringBuilder();
        for (String line : read("Dockerfile").split("\n")) {
            if (current.isEmpty() && (line.isBlank() || line.stripLeading().startsWith("#"))) {
                continue;
            }
            if (line.endsWith("\\")) {
                current.append(line, 0, line.length() - 1).append(' ');
            } else {
                out.add(current.append(line).toString().strip());
                current.setLength(0);
            }
        }
        return out;
    }

    private static Set<String> commands(String text) {
        Set<String> found = new TreeSet<>();
        Matcher matcher = DOCKER_COMMAND.matcher(text);
        while (matcher.find()) {
            found.add(matcher.group(1).strip().replaceAll("\\s+", " "));
        }
        return found;
    }

    @Test
    void theDockerfilesBuildAndRunCommandsAreTheReadmes() throws IOException {
        StringBuilder comments = new StringBuilder();
        for (String line : read("Dockerfile").split("\n")) {
            if (line.startsWith("#")) {
                comments.append(line.substring(1)).append('\n');
            }
        }
        Set<String> inDockerfile = commands(comments.toString().replaceAll("(?m)^[^:\\n]*:\\s+(?=docker )", ""));
        Set<String> inReadme = commands(read("README.md"));
        assertThat(inDockerfile).as("docker commands documented in the Dockerfile").hasSizeGreaterThanOrEqualTo(4);
        assertThat(inReadme).containsAll(inDockerfile);
        assertThat(inDockerfile).containsAll(inReadme);
    }

    @Test
    void everyPathTheDockerfileCopiesExistsAndIsNotIgnored() throws IOException {
        List<String> ignored = read(".dockerignore").lines()
                .filter(line -> !line.isBlank() && !line.startsWith("#")).toList();
        int copies = 0;
        for (String instruction : instructions()) {
            if (!instruction.startsWith("COPY ") || instruction.contains("--from=")) {
                continue;
            }
            String[] parts = instruction.substring(5).trim().split("\\s+");
            for (int i = 0; i < parts.length - 1; i++) {
                String source = parts[i];
                assertThat(ROOT.resolve(source)).as("COPY source %s", source).exists();
                String top = source.split("/")[0];
                assertThat(ignored).as(".dockerignore must not drop %s", source).doesNotContain(top);
                copies++;
            }
        }
        assertThat(copies).isGreaterThan(5);
        assertThat(ignored).contains(".git", "**/target");
    }

    /**
     * A file of the repository that a module's build runs (a pom's {@code ${project.basedir}/...} path,
     * as the engine's kernel build script) is copied into the builder stage before the jars are built.
     */
    @Test
    void whatTheBuildRunsIsCopiedBeforeItRuns() throws IOException {
        List<String> copied = new ArrayList<>();
        boolean built = false;
        for (String instruction : instructions()) {
            if (instruction.startsWith("RUN ") && instruction.contains("mvnw") && instruction.contains(" package")) {
                built = true;
                break;
            }
            if (instruction.startsWith("COPY ") && !instruction.contains("--from=")) {
                String[] parts = instruction.substring(5).trim().split("\\s+");
                copied.addAll(List.of(parts).subList(0, parts.length - 1));
            }
        }
        assertThat(built).as("the builder stage runs the Maven package").isTrue();
        Pattern basedirPath = Pattern.compile("\\$\\{project\\.basedir}/([^<\\s]+)");
        int needed = 0;
        for (String module : List.of("", "engine/", "web/", "server/")) {
            Matcher paths = basedirPath.matcher(read(module + "pom.xml"));
            while (paths.find()) {
                String path = ROOT.relativize(ROOT.resolve(module).resolve(paths.group(1)).normalize()).toString();
                assertThat(copied).as("%s (run by %spom.xml) is copied before the build", path, module)
                        .anyMatch(source -> path.equals(source) || path.startsWith(source.endsWith("/")
                                ? source : source + "/"));
                needed++;
            }
        }
        assertThat(needed).as("the kernel build script at least").isPositive();
    }

    @Test
    void baseImagesArePinnedAndTheTargetsExist() throws IOException {
        List<String> stages = new ArrayList<>();
        for (String instruction : instructions()) {
            if (instruction.startsWith("FROM ")) {
                String[] parts = instruction.split("\\s+");
                String image = parts[1];
                if (!stages.contains(image)) {
                    assertThat(image).as("image %s carries a version tag", image).matches("[^:]+:[0-9][^:]*");
                }
                if (parts.length == 4 && parts[2].equalsIgnoreCase("AS")) {
                    stages.add(parts[3]);
                }
            }
        }
        assertThat(stages).contains("builder", "cpu", "gpu");
        assertThat(stages.getLast()).as("the default target is the last stage").isEqualTo("gpu");
        for (String image : read("docker-compose.yml").lines().filter(l -> l.strip().startsWith("image:"))
                .map(l -> l.strip().substring(6).strip()).toList()) {
            if (!image.startsWith("coil:")) {
                assertThat(image).as("compose image %s is pinned", image).matches("[^:]+:v?[0-9][^:]*");
            }
        }
    }

    @Test
    void containersRunAsANonRootUserWithAHealthCheckOnHealth() throws IOException {
        List<String> instructions = instructions();
        long users = instructions.stream().filter(i -> i.equals("USER coil")).count();
        long checks = instructions.stream().filter(i -> i.startsWith("HEALTHCHECK") && i.contains("/health")).count();
        assertThat(users).isEqualTo(2);
        assertThat(checks).isEqualTo(2);
        // "docker run IMAGE serve" (SageMaker's start) replaces CMD's --host: the image's COIL_HOST keeps it reachable.
        assertThat(instructions.stream().filter(i -> i.equals("ENV COIL_HOST=0.0.0.0")).count()).isEqualTo(2);
        // A Hub model's download lands in the volume the images declare and the coil user owns.
        assertThat(instructions.stream().filter(i -> i.equals("ENV HF_HOME=/models/huggingface")).count()).isEqualTo(2);
        assertThat(instructions).contains("VOLUME [\"/models\"]");
        assertThat(instructions.stream().filter(i -> i.contains("mkdir -p /models && chown coil /models")).count())
                .isEqualTo(2);
    }

    @Test
    void theEntryPointRunsWhatTheLauncherRuns() throws IOException {
        String launcher = read("coil");
        List<String> entryPoints = instructions().stream().filter(i -> i.startsWith("ENTRYPOINT")).toList();
        assertThat(entryPoints).as("the CPU and the CUDA image's entry points").hasSize(2);
        for (String entry : entryPoints) {
            for (String flag : List.of("--add-modules\", \"jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                    "dev.coil.server.Main")) {
                assertThat(entry).contains(flag);
            }
        }
        assertThat(launcher).contains("--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED",
                "dev.coil.server.Main");
    }

    @Test
    void composeMountsConfigFilesThatExist() throws IOException {
        String compose = read("docker-compose.yml");
        Matcher mounts = Pattern.compile("- \\./(deploy/[^:]+):").matcher(compose);
        int count = 0;
        while (mounts.find()) {
            assertThat(ROOT.resolve(mounts.group(1))).exists();
            count++;
        }
        assertThat(count).isEqualTo(2);
        assertThat(compose).contains("OTEL_EXPORTER_OTLP_ENDPOINT: http://otel-collector:4318");
        // The query the compose file suggests names a metric Coil exports (docs/api.md lists them, and
        // TelemetryTest reads them from /metrics).
        Matcher query = Pattern.compile("query e\\.g\\. ([a-z_]+?)(?:_count|_sum|_bucket)?\\)").matcher(compose);
        assertThat(query.find()).as("an example query in docker-compose.yml").isTrue();
        assertThat(read("docs/api.md")).contains("| `" + query.group(1) + "` |");
        assertThat(read("deploy/prometheus.yml")).contains("coil:8080");
        assertThat(read("deploy/otel-collector.yaml")).contains("jaeger:4317");
    }
}
