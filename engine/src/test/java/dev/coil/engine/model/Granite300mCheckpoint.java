package dev.coil.engine.model;

import dev.coil.engine.bench.RandomCheckpoint;
import dev.coil.engine.load.DType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;

/**
 * The random bf16 GraniteMoeHybrid of the 300M shape ({@link RandomCheckpoint.Shape#granite300m},
 * seed 42), written to a folder of its own under /tmp and deleted on close: the model the GPU
 * timing tests measure.
 */
public final class Granite300mCheckpoint implements AutoCloseable {

    private final Path folder;

    private Granite300mCheckpoint(Path folder) {
        this.folder = folder;
    }

    public static Granite300mCheckpoint write() throws IOException {
        Granite300mCheckpoint checkpoint = new Granite300mCheckpoint(
                Files.createTempDirectory(Path.of("/tmp"), "coil-granite300m"));
        try {
            RandomCheckpoint.write(checkpoint.folder, RandomCheckpoint.Shape.granite300m(), DType.BF16, 42);
        } catch (IOException | RuntimeException e) {
            checkpoint.close();
            throw e;
        }
        return checkpoint;
    }

    public Path folder() {
        return folder;
    }

    /** Deletes the folder and everything in it. */
    @Override
    public void close() throws IOException {
        try (Stream<Path> files = Files.walk(folder)) {
            for (Path file : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(file);
            }
        }
    }
}
