package dev.coil.engine.load;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.coil.engine.ops.Matrix;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;

/**
 * Writes a .safetensors file: tensors in name order, "__metadata__" {"format": "pt"} plus any
 * extra strings, the header padded with spaces so the data starts 8-byte aligned. Values stream
 * through a fixed buffer tensor by tensor, so the file's size is bounded only by the disk.
 */
public final class SafeTensorsWriter {

    /** Elements converted per chunk: 256 Ki, at most 1 MiB of output. */
    private static final int CHUNK = 1 << 18;

    private static final ObjectMapper JSON = new ObjectMapper();

    private SafeTensorsWriter() {}

    public static void write(Path file, Map<String, ? extends TensorSource> tensors) throws IOException {
        write(file, tensors, Map.of());
    }

    public static void write(Path file, Map<String, ? extends TensorSource> tensors, Map<String, String> metadata)
            throws IOException {
        Map<String, TensorSource> sorted = new TreeMap<>(tensors);
        byte[] header = header(sorted, metadata);
        try (FileChannel channel = FileChannel.open(file,
                StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer prefix = ByteBuffer.allocate(8 + header.length).order(ByteOrder.LITTLE_ENDIAN);
            prefix.putLong(header.length).put(header).flip();
            writeFully(channel, prefix);
            ByteBuffer buffer = ByteBuffer.allocateDirect(CHUNK * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
            float[] chunk = new float[CHUNK];
            for (TensorSource tensor : sorted.values()) {
                writeValues(channel, tensor, chunk, buffer);
            }
        }
    }

    /** The JSON header, space-padded to a multiple of 8 bytes. */
    private static byte[] header(Map<String, TensorSource> sorted, Map<String, String> metadata) throws IOException {
        ObjectNode root = JSON.createObjectNode();
        ObjectNode meta = root.putObject("__metadata__");
        meta.put("format", "pt");
        metadata.forEach(meta::put);
        long offset = 0;
        for (Map.Entry<String, TensorSource> entry : sorted.entrySet()) {
            TensorSource tensor = entry.getValue();
            long bytes = Math.multiplyExact(tensor.elementCount(), tensor.dtype().bytes());
            ObjectNode node = root.putObject(entry.getKey());
            node.put("dtype", tensor.dtype().name());
            Arrays.stream(tensor.shape()).forEach(node.putArray("shape")::add);
            node.putArray("data_offsets").add(offset).add(offset + bytes);
            offset += bytes;
        }
        byte[] json = JSON.writeValueAsString(root).getBytes(StandardCharsets.UTF_8);
        byte[] padded = Arrays.copyOf(json, (json.length + 7) / 8 * 8);
        Arrays.fill(padded, json.length, padded.length, (byte) ' ');
        return padded;
    }

    private static void writeValues(FileChannel channel, TensorSource tensor, float[] chunk, ByteBuffer buffer)
            throws IOException {
        DType dtype = tensor.dtype();
        long count = tensor.elementCount();
        for (long offset = 0; offset < count; offset += CHUNK) {
            int length = (int) Math.min(CHUNK, count - offset);
            float[] values = length == CHUNK ? chunk : new float[length];
            tensor.fill(offset, values);
            buffer.clear();
            for (float value : values) {
                switch (dtype) {
                    case F32 -> buffer.putFloat(value);
                    case BF16 -> buffer.putShort(Matrix.floatToBf16(value));
                    case F16 -> buffer.putShort(Float.floatToFloat16(value));
                }
            }
            buffer.flip();
            writeFully(channel, buffer);
        }
    }

    private static void writeFully(FileChannel channel, ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            channel.write(buffer);
        }
    }
}
