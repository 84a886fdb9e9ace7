package dev.coil.engine.load;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.ops.Matrix;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.Set;
import java.util.TreeMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The weights of a model folder: one {@code model.safetensors}, or shards listed by
 * {@code model.safetensors.index.json} ({"weight_map": {tensor name → shard file}}). All files stay
 * memory-mapped, or copied into memory ({@link WeightStorage}), until {@link #close()}; {@link #matrix}
 * views share those bytes, {@link #floats} copies.
 */
public final class Checkpoint implements AutoCloseable {

    public static final String SINGLE_FILE = "model.safetensors";
    public static final String INDEX_FILE = "model.safetensors.index.json";

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Path folder;
    /** The file that names the tensors (model.safetensors or the index), for messages. */
    private final String source;
    private final WeightStorage storage;
    private final List<SafeTensorsFile> files;
    private final Map<String, SafeTensorsFile> fileOfTensor;

    private static final Logger LOG = LoggerFactory.getLogger(Checkpoint.class);

    private Checkpoint(Path folder, String source, WeightStorage storage, List<SafeTensorsFile> files,
            Map<String, SafeTensorsFile> fileOfTensor) {
        this.folder = folder;
        this.storage = storage;
        this.source = source;
        this.files = List.copyOf(files);
        this.fileOfTensor = Collections.unmodifiableMap(fileOfTensor);
    }

    /** The folder's weights, memory-mapped ({@link WeightStorage#MAPPED}). */
    public static Checkpoint open(Path folder) {
        return open(folder, WeightStorage.MAPPED);
    }

    /**
     * The folder's weights where {@code storage} says; {@link WeightStorage#MEMORY} falls back to the
     * mapping, with a warning, when the files would fill more than {@link #MEMORY_SHARE} of the memory
     * still available ({@link AvailableMemory}): a copy that does not fit gets the process killed,
     * while mapped pages the kernel can drop and read again.
     */
    public static Checkpoint open(Path folder, WeightStorage storage) {
        return open(folder, storage, AvailableMemory.bytes());
    }

    /** The share of the available memory that weights copied into memory may take. */
    static final double MEMORY_SHARE = 0.8;

    static Checkpoint open(Path folder, WeightStorage storage, OptionalLong availableBytes) {
        if (!Files.isDirectory(folder)) {
            throw new CheckpointException("Model folder " + folder + (Files.exists(folder) ? " is not a directory." : " does not exist."));
        }
        if (Files.isRegularFile(folder.resolve(SINGLE_FILE))) {
            return openSingle(folder, fitting(storage, List.of(folder.resolve(SINGLE_FILE)), availableBytes));
        }
        if (Files.isRegularFile(folder.resolve(INDEX_FILE))) {
            Map<String, String> shardOfTensor = readWeightMap(folder);
            List<Path> shards = new LinkedHashSet<>(shardOfTensor.values()).stream().map(folder::resolve).toList();
            return openSharded(folder, shardOfTensor, fitting(storage, shards, availableBytes));
        }
        String pickle = Files.exists(folder.resolve("pytorch_model.bin")) ? "pytorch_model.bin"
                : Files.exists(folder.resolve("pytorch_model.bin.index.json")) ? "pytorch_model.bin.index.json" : null;
        throw new CheckpointException(folder + " has neither " + SINGLE_FILE + " nor " + INDEX_FILE
                + (pickle == null ? "; Coil reads safetensors weights." :
                        "; it has " + pickle + ", but pickle checkpoints are not supported; convert to safetensors."));
    }

    private static Checkpoint openSingle(Path folder, WeightStorage storage) {
        SafeTensorsFile file = SafeTensorsFile.open(folder.resolve(SINGLE_FILE), storage);
        Map<String, SafeTensorsFile> fileOfTensor = new TreeMap<>();
        for (String name : file.tensors().keySet()) {
            fileOfTensor.put(name, file);
        }
        return new Checkpoint(folder, SINGLE_FILE, storage, List.of(file), fileOfTensor);
    }

    private static Checkpoint openSharded(Path folder, Map<String, String> shardOfTensor, WeightStorage storage) {
        Map<String, SafeTensorsFile> shards = new LinkedHashMap<>();
        try {
            Map<String, SafeTensorsFile> fileOfTensor = new TreeMap<>();
            for (Map.Entry<String, String> entry : shardOfTensor.entrySet()) {
                String tensor = entry.getKey();
                String shardName = entry.getValue();
                SafeTensorsFile shard = shards.get(shardName);
                if (shard == null) {
                    shard = SafeTensorsFile.open(resolveShard(folder, shardName, tensor), storage);
                    shards.put(shardName, shard);
                }
                if (!shard.has(tensor)) {
                    throw new CheckpointException(INDEX_FILE + ": tensor '" + tensor + "' is mapped to " + shardName
                            + ", which has no such tensor.");
                }
                fileOfTensor.put(tensor, shard);
            }
            return new Checkpoint(folder, INDEX_FILE, storage, new ArrayList<>(shards.values()), fileOfTensor);
        } catch (RuntimeException e) {
            shards.values().forEach(SafeTensorsFile::close);
            throw e;
        }
    }

    /** {@code storage}, unless it is MEMORY and {@code files} would not fit in the memory available. */
    private static WeightStorage fitting(WeightStorage storage, List<Path> files, OptionalLong availableBytes) {
        if (storage != WeightStorage.MEMORY || availableBytes.isEmpty()) {
            return storage;
        }
        long bytes = 0;
        for (Path file : files) {
            try {
                bytes += Files.size(file);
            } catch (IOException e) {
                return storage; // a missing shard fails with its own message when it is opened
            }
        }
        if (bytes <= MEMORY_SHARE * availableBytes.getAsLong()) {
            return storage;
        }
        LOG.warn("the weights ({} MB) would take more than {}% of the memory available ({} MB): reading them from the"
                + " memory-mapped files instead, as --mmap does (slower CPU decode)", bytes >> 20,
                Math.round(100 * MEMORY_SHARE), availableBytes.getAsLong() >> 20);
        return WeightStorage.MAPPED;
    }

    private static Map<String, String> readWeightMap(Path folder) {
        ObjectNode index = ConfigJson.read(folder.resolve(INDEX_FILE));
        ObjectNode weightMap = ConfigJson.getObject(index, "weight_map");
        if (weightMap == null) {
            throw new CheckpointException(INDEX_FILE + ": key 'weight_map' is missing.");
        }
        Map<String, String> shardOfTensor = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> entry : weightMap.properties()) {
            if (!entry.getValue().isTextual()) {
                throw new CheckpointException(INDEX_FILE + ": tensor '" + entry.getKey() + "' is mapped to "
                        + entry.getValue() + "; expected a shard file name.");
            }
            shardOfTensor.put(entry.getKey(), entry.getValue().textValue());
        }
        return shardOfTensor;
    }

    private static Path resolveShard(Path folder, String shardName, String tensor) {
        Path base = folder.toAbsolutePath().normalize();
        Path shard = base.resolve(shardName).normalize();
        if (!base.equals(shard.getParent())) {
            throw new CheckpointException(INDEX_FILE + ": shard '" + shardName + "' (for tensor '" + tensor
                    + "') is not a file name inside the model folder.");
        }
        if (!Files.isRegularFile(shard)) {
            throw new CheckpointException(INDEX_FILE + ": shard " + shardName + " (for tensor '" + tensor
                    + "') does not exist in " + folder + ".");
        }
        return shard;
    }

    public Path folder() {
        return folder;
    }

    /** Where the tensors' bytes are read from (MEMORY asked for may have fallen back to MAPPED). */
    public WeightStorage storage() {
        return storage;
    }

    public boolean has(String name) {
        return fileOfTensor.containsKey(name);
    }

    /** All tensor names, sorted. */
    public Set<String> names() {
        return fileOfTensor.keySet();
    }

    public TensorInfo info(String name) {
        SafeTensorsFile file = fileOfTensor.get(name);
        if (file == null) {
            throw new CheckpointException(source + " has no tensor '" + name + "'.");
        }
        return file.info(name);
    }

    /** The tensor's raw bytes, a slice of the mapping. */
    public MemorySegment data(String name) {
        TensorInfo info = info(name);
        return fileOfTensor.get(name).data(info);
    }

    /** Sum of element counts over all tensors. */
    public long parameterCount() {
        long count = 0;
        for (String name : names()) {
            count += info(name).elementCount();
        }
        return count;
    }

    /** A [rows, cols] tensor as a {@link Matrix} over the mapped bytes, in its stored dtype. */
    public Matrix matrix(String name, int rows, int cols) {
        TensorInfo info = requireShape(name, rows, cols);
        return new Matrix(data(name), info.dtype(), rows, cols);
    }

    /**
     * A [count, rows, cols] tensor (one matrix per expert) as one {@link Matrix} of count · rows rows,
     * so that matrix i is its {@code rowSlice(i · rows, rows)}.
     */
    public Matrix stackedMatrix(String name, int count, int rows, int cols) {
        TensorInfo info = requireShape(name, count, rows, cols);
        return new Matrix(data(name), info.dtype(), Math.multiplyExact(count, rows), cols);
    }

    /**
     * A tensor of exactly {@code expectedShape}, widened to f32 and flattened row-major: norms,
     * biases, A_log, D, dt_bias, conv1d weights [channels, 1, kernel] → [channels · kernel].
     */
    public float[] floats(String name, int... expectedShape) {
        TensorInfo info = requireShape(name, expectedShape);
        long count = info.elementCount();
        if (count > Integer.MAX_VALUE - 8) {
            throw new CheckpointException(info.file() + ": tensor '" + name + "' has " + count
                    + " elements, too many to copy into one array; read it as a matrix.");
        }
        return widen(data(name), info.dtype(), (int) count);
    }

    private TensorInfo requireShape(String name, int... expectedShape) {
        TensorInfo info = info(name);
        long[] expected = Arrays.stream(expectedShape).asLongStream().toArray();
        if (!info.hasShape(expected)) {
            throw new CheckpointException(info.file() + ": tensor '" + name + "' has shape " + info.shapeText()
                    + "; expected " + TensorInfo.shapeText(expected) + ".");
        }
        return info;
    }

    private static float[] widen(MemorySegment data, DType dtype, int count) {
        float[] values = new float[count];
        switch (dtype) {
            case F32 -> MemorySegment.copy(data, F32, 0, values, 0, count);
            case BF16 -> {
                for (int i = 0; i < count; i++) {
                    values[i] = Matrix.bf16ToFloat(data.getAtIndex(U16, i));
                }
            }
            case F16 -> {
                for (int i = 0; i < count; i++) {
                    values[i] = Float.float16ToFloat(data.getAtIndex(U16, i));
                }
            }
        }
        return values;
    }

    @Override
    public void close() {
        files.forEach(SafeTensorsFile::close);
    }
}
