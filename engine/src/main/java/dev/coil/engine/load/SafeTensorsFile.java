package dev.coil.engine.load;

import dev.coil.engine.ops.HugePageArena;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;

/**
 * One .safetensors file: [u64 little-endian header length][UTF-8 JSON header][tensor bytes].
 * {@link WeightStorage#MAPPED}: memory-mapped read-only, tensors are slices of the mapping, never
 * copies, so a file larger than memory costs only what is touched. {@link WeightStorage#MEMORY}: the
 * whole file copied once into memory on huge pages ({@link HugePageArena}), tensors slices of that
 * copy. Either lives in a shared arena (any thread may read) until {@link #close()}.
 */
public final class SafeTensorsFile implements AutoCloseable {

    /** The reference implementation refuses headers over 100 MB; so do we. */
    static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;

    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Path path;
    private final Arena arena;
    private final MemorySegment bytes; // the whole file, mapped or copied
    private final SafeTensorsHeader header;

    private SafeTensorsFile(Path path, Arena arena, MemorySegment bytes, SafeTensorsHeader header) {
        this.path = path;
        this.arena = arena;
        this.bytes = bytes;
        this.header = header;
    }

    /** The file memory-mapped ({@link WeightStorage#MAPPED}). */
    public static SafeTensorsFile open(Path path) {
        return open(path, WeightStorage.MAPPED);
    }

    public static SafeTensorsFile open(Path path, WeightStorage storage) {
        String file = path.getFileName().toString();
        Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = channel.size();
            if (size < 8) {
                throw new CheckpointException(file + " is " + size
                        + " bytes long, too short for a safetensors file (which starts with an 8-byte header length).");
            }
            MemorySegment mapping = channel.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            long headerLength = mapping.get(U64, 0);
            if (headerLength < 0 || headerLength > MAX_HEADER_BYTES) {
                throw new CheckpointException(file + ": the header length " + Long.toUnsignedString(headerLength)
                        + " is over the 100 MB limit; the file is corrupt or not a safetensors file.");
            }
            if (8 + headerLength > size) {
                throw new CheckpointException(file + ": the header length " + headerLength + " runs past the end of the "
                        + size + "-byte file; the file is truncated or not a safetensors file.");
            }
            byte[] headerBytes = mapping.asSlice(8, headerLength).toArray(ValueLayout.JAVA_BYTE);
            SafeTensorsHeader header = SafeTensorsHeader.parse(file, headerBytes, 8 + headerLength, size);
            if (storage == WeightStorage.MEMORY) {
                HugePageArena memory = HugePageArena.ofShared();
                try {
                    MemorySegment copy = memory.allocate(size, 64);
                    readFully(channel, copy);
                    arena.close(); // the mapping; the copy is all that is read from now on
                    return new SafeTensorsFile(path, memory, copy, header);
                } catch (RuntimeException | IOException e) {
                    memory.close();
                    throw e; // the mapping is closed below
                } catch (OutOfMemoryError e) {
                    memory.close();
                    arena.close();
                    throw e;
                }
            }
            return new SafeTensorsFile(path, arena, mapping, header);
        } catch (NoSuchFileException e) {
            arena.close();
            throw new CheckpointException(path + " does not exist.", e);
        } catch (IOException e) {
            arena.close();
            throw new CheckpointException(path + " cannot be read (" + e.getMessage() + ").", e);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /**
     * The whole file into {@code copy}, by reads (straight from the page cache) rather than through
     * the mapping, whose every 4 KiB page would fault on first touch: 608 MB took 122-151 ms so,
     * 469 ms through the mapping.
     */
    private static void readFully(FileChannel channel, MemorySegment copy) throws IOException {
        long position = 0;
        while (position < copy.byteSize()) {
            long length = Math.min(1L << 30, copy.byteSize() - position);
            int read = channel.read(copy.asSlice(position, length).asByteBuffer(), position);
            if (read < 0) {
                throw new IOException("the file ended at byte " + position + " of " + copy.byteSize());
            }
            position += read;
        }
    }

    public Path path() {
        return path;
    }

    /** The file name used in messages ("model-00001-of-00002.safetensors"). */
    public String fileName() {
        return path.getFileName().toString();
    }

    /** Tensor name → where it lives, in header order. */
    public Map<String, TensorInfo> tensors() {
        return header.tensors();
    }

    /** The "__metadata__" strings (usually {"format": "pt"}); empty when absent. */
    public Map<String, String> metadata() {
        return header.metadata();
    }

    public boolean has(String name) {
        return header.tensors().containsKey(name);
    }

    public TensorInfo info(String name) {
        TensorInfo info = header.tensors().get(name);
        if (info == null) {
            throw new CheckpointException(fileName() + " has no tensor '" + name + "'.");
        }
        return info;
    }

    /** The tensor's bytes as a slice of the mapping or copy, exactly {@code info(name).byteSize()} long. */
    public MemorySegment data(String name) {
        return data(info(name));
    }

    MemorySegment data(TensorInfo info) {
        return bytes.asSlice(info.dataOffset(), info.byteSize());
    }

    public long byteSize() {
        return bytes.byteSize();
    }

    /** Unmaps the file or frees its copy; slices handed out before become unusable. */
    @Override
    public void close() {
        arena.close();
    }
}
