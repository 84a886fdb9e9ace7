package dev.coil.engine.gpu.blas;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.coil.engine.gpu.CudaException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The search for the installed cuBLAS, over a fake file system: order, names and the failure's sentence. */
class CublasLocatorTest {

    @TempDir
    Path root;

    private final Map<String, String> environment = new HashMap<>();
    private List<String> linkerCache = List.of();

    private CublasLocator locator() {
        return new CublasLocator(environment, () -> linkerCache, root.resolve("home"), List.of(root));
    }

    private Path library(String folder, String name) throws IOException {
        Path path = root.resolve(folder).resolve(name);
        Files.createDirectories(path.getParent());
        Files.write(path, new byte[] {0x7f, 'E', 'L', 'F'});
        return path;
    }

    @Test
    void findsTheNvidiaPythonPackageOfAVirtualEnvironmentOnPath() throws IOException {
        Path python = library("opt/venv/bin", "python3");
        python.toFile().setExecutable(true);
        Path cublas = library("opt/venv/lib/python3.12/site-packages/nvidia/cu13/lib", "libcublas.so.13");
        Path lt = library("opt/venv/lib/python3.12/site-packages/nvidia/cu13/lib", "libcublasLt.so.13");
        environment.put("PATH", root.resolve("nothing-here") + ":" + root.resolve("opt/venv/bin"));

        assertThat(locator().locate()).isEqualTo(new CublasLocator.Found(cublas, lt));
    }

    @Test
    void findsTheCuda12PackageLayoutToo() throws IOException {
        Path cublas = library("usr/local/lib/python3.10/dist-packages/nvidia/cublas/lib", "libcublas.so.12");

        assertThat(locator().locate()).isEqualTo(new CublasLocator.Found(cublas, null));
    }

    @Test
    void cudaHomeComesBeforeTheLibraryPathWhichComesBeforeTheLinkerCacheAndDefaults() throws IOException {
        Path fromHome = library("toolkit/lib64", "libcublas.so.13");
        Path fromLibraryPath = library("libpath", "libcublas.so.13");
        Path fromCache = library("cached", "libcublas.so.13");
        Path fromDefault = library("usr/local/cuda/lib64", "libcublas.so.13");
        environment.put("CUDA_HOME", root.resolve("toolkit").toString());
        environment.put("LD_LIBRARY_PATH", root.resolve("libpath").toString());
        linkerCache = List.of("1 libs found in cache `/etc/ld.so.cache'",
                "\tlibcublas.so.13 (libc6,x86-64) => " + fromCache);

        assertThat(locator().locate().cublas()).isEqualTo(fromHome);
        environment.remove("CUDA_HOME");
        assertThat(locator().locate().cublas()).isEqualTo(fromLibraryPath);
        environment.remove("LD_LIBRARY_PATH");
        assertThat(locator().locate().cublas()).isEqualTo(fromCache);
        linkerCache = List.of();
        assertThat(locator().locate().cublas()).isEqualTo(fromDefault);
    }

    @Test
    void prefersTheNewestMajorVersionInAFolder() throws IOException {
        library("libpath", "libcublas.so.12");
        Path newest = library("libpath", "libcublas.so.13");
        environment.put("LD_LIBRARY_PATH", root.resolve("libpath").toString());

        assertThat(locator().locate().cublas()).isEqualTo(newest);
    }

    @Test
    void absenceIsASentenceNamingWhereItLookedAndWhatToInstall() {
        environment.put("CUDA_HOME", root.resolve("toolkit").toString());

        assertThatThrownBy(() -> locator().locate())
                .isInstanceOf(CudaException.class)
                .hasMessageStartingWith("cuBLAS not found: looked for libcublas.so.13, libcublas.so.12")
                .hasMessageContaining(root.resolve("toolkit/lib64").toString())
                .hasMessageContaining("pip install nvidia-cublas");
    }
}
