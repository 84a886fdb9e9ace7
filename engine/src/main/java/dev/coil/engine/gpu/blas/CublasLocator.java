package dev.coil.engine.gpu.blas;

import dev.coil.engine.gpu.CudaException;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * Finds the installed cuBLAS (libcublas.so.13 or .12, and libcublasLt beside it). Coil ships no
 * CUDA libraries; it uses the machine's, looked for in this order:
 * <ol>
 *   <li>$CUDA_HOME and $CUDA_PATH (lib64, lib);</li>
 *   <li>each folder of $LD_LIBRARY_PATH;</li>
 *   <li>the dynamic linker's cache ({@code ldconfig -p});</li>
 *   <li>/usr/local/cuda;</li>
 *   <li>the lib folders of the nvidia-cublas Python packages (nvidia/cu13/lib, nvidia/cublas/lib)
 *       in the site-packages of each python3 on $PATH, $VIRTUAL_ENV, $CONDA_PREFIX, the system's
 *       and the user's.</li>
 * </ol>
 */
public final class CublasLocator {

    /** Preferred first: the newest major version. */
    static final List<String> NAMES = List.of("libcublas.so.13", "libcublas.so.12", "libcublas.so");

    /** The cuBLAS library found, and its libcublasLt beside it (null when the linker must find that itself). */
    public record Found(Path cublas, Path cublasLt) {}

    private final Map<String, String> environment;
    private final Supplier<List<String>> linkerCache;
    private final Path home;
    private final List<Path> systemRoots;

    CublasLocator(Map<String, String> environment, Supplier<List<String>> linkerCache, Path home,
            List<Path> systemRoots) {
        this.environment = environment;
        this.linkerCache = linkerCache;
        this.home = home;
        this.systemRoots = systemRoots;
    }

    /** A locator over this process's environment, linker cache and file system. */
    public static CublasLocator system() {
        return new CublasLocator(System.getenv(), CublasLocator::readLinkerCache, Path.of(System.getProperty("user.home")),
                List.of(Path.of("/")));
    }

    /** The first cuBLAS in search order, or a failure that lists every place searched. */
    public Found locate() {
        List<Path> folders = searchFolders();
        for (Path folder : folders) {
            for (String name : NAMES) {
                Path cublas = folder.resolve(name);
                if (Files.isRegularFile(cublas)) {
                    Path lt = folder.resolve(name.replace("libcublas", "libcublasLt"));
                    return new Found(cublas, Files.isRegularFile(lt) ? lt : null);
                }
            }
        }
        throw new CudaException("cuBLAS not found: looked for " + String.join(", ", NAMES) + " in $CUDA_HOME, "
                + "$CUDA_PATH, $LD_LIBRARY_PATH, the linker cache, /usr/local/cuda and the nvidia Python packages ("
                + folders.size() + " folders: " + folders + "). Install the CUDA toolkit's cuBLAS or "
                + "`pip install nvidia-cublas`, or point CUDA_HOME or LD_LIBRARY_PATH at it.");
    }

    /** Every folder that could hold cuBLAS, in search order, without duplicates. */
    List<Path> searchFolders() {
        Set<Path> folders = new LinkedHashSet<>();
        for (String variable : List.of("CUDA_HOME", "CUDA_PATH")) {
            String root = environment.get(variable);
            if (root != null && !root.isBlank()) {
                folders.add(Path.of(root, "lib64"));
                folders.add(Path.of(root, "lib"));
            }
        }
        for (String entry : pathList(environment.get("LD_LIBRARY_PATH"))) {
            folders.add(Path.of(entry));
        }
        for (String line : linkerCache.get()) {
            int arrow = line.indexOf("=>");
            if (line.contains("libcublas") && arrow >= 0) {
                Path library = Path.of(line.substring(arrow + 2).trim());
                if (library.getParent() != null) {
                    folders.add(library.getParent());
                }
            }
        }
        for (Path root : systemRoots) {
            folders.add(root.resolve("usr/local/cuda/lib64"));
            folders.add(root.resolve("usr/local/cuda/targets/x86_64-linux/lib"));
        }
        for (Path sitePackages : sitePackages()) {
            for (String folder : List.of("nvidia/cu13/lib", "nvidia/cublas/lib", "nvidia/cu12/lib")) {
                folders.add(sitePackages.resolve(folder));
            }
        }
        return List.copyOf(folders);
    }

    /** site-packages and dist-packages folders of the Python installations this machine likely uses. */
    private List<Path> sitePackages() {
        List<Path> prefixes = new ArrayList<>();
        for (String entry : pathList(environment.get("PATH"))) {
            Path bin = Path.of(entry);
            if (bin.getParent() != null
                    && (Files.isExecutable(bin.resolve("python3")) || Files.isExecutable(bin.resolve("python")))) {
                prefixes.add(bin.getParent());
            }
        }
        for (String variable : List.of("VIRTUAL_ENV", "CONDA_PREFIX")) {
            String prefix = environment.get(variable);
            if (prefix != null && !prefix.isBlank()) {
                prefixes.add(Path.of(prefix));
            }
        }
        for (Path root : systemRoots) {
            prefixes.add(root.resolve("usr/local"));
            prefixes.add(root.resolve("usr"));
        }
        prefixes.add(home.resolve(".local"));
        List<Path> found = new ArrayList<>();
        for (Path prefix : prefixes) {
            for (Path python : children(prefix.resolve("lib"), "python3*")) {
                found.add(python.resolve("site-packages"));
                found.add(python.resolve("dist-packages"));
            }
        }
        for (Path root : systemRoots) {
            found.add(root.resolve("usr/lib/python3/dist-packages"));
        }
        return found;
    }

    private static List<Path> children(Path folder, String glob) {
        List<Path> children = new ArrayList<>();
        if (!Files.isDirectory(folder)) {
            return children;
        }
        try (DirectoryStream<Path> stream = Files.newDirectoryStream(folder, glob)) {
            stream.forEach(children::add);
        } catch (IOException e) {
            return children;
        }
        children.sort(null);
        return children;
    }

    private static List<String> pathList(String value) {
        List<String> entries = new ArrayList<>();
        if (value != null) {
            for (String entry : value.split(":")) {
                if (!entry.isBlank()) {
                    entries.add(entry);
                }
            }
        }
        return entries;
    }

    /** The lines of {@code ldconfig -p}, or none when it cannot run (no ldconfig, a sandbox). */
    static List<String> readLinkerCache() {
        for (String ldconfig : List.of("/sbin/ldconfig", "/usr/sbin/ldconfig", "ldconfig")) {
            if (ldconfig.startsWith("/") && !Files.isExecutable(Path.of(ldconfig))) {
                continue;
            }
            try {
                Process process = new ProcessBuilder(ldconfig, "-p").redirectErrorStream(true).start();
                List<String> lines;
                try (BufferedReader reader = new BufferedReader(
                        new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                    lines = reader.lines().toList();
                }
                if (process.waitFor(10, TimeUnit.SECONDS) && process.exitValue() == 0) {
                    return lines;
                }
                process.destroy();
            } catch (IOException e) {
                // try the next spelling
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return List.of();
            }
        }
        return List.of();
    }
}
