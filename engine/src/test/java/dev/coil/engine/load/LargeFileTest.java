package dev.coil.engine.load;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.ops.Matrix;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A file over 2 GiB, sparse on disk: a 2 GiB zero "filler" tensor (never written, so it takes no
 * space) followed by a small tensor whose bytes lie past 2^31.
 */
class LargeFileTest {

    @TempDir
    Path folder;

    @Test
    void tensorsPastTwoGibibytesReadBack() throws IOException {
        long fillerBytes = 1L << 31; // [32768, 16384] f32
        float[] tail = {1.5f, -2.25f, 3e-5f, 65504f};
        String headerJson = "{\"filler\":{\"dtype\":\"F32\",\"shape\":[32768,16384],\"data_offsets\":[0," + fillerBytes
                + "]},\"tail\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[" + fillerBytes + ","
                + (fillerBytes + 16) + "]}}";
        byte[] header = headerJson.getBytes(StandardCharsets.UTF_8);
        header = Arrays.copyOf(header, (header.length + 7) / 8 * 8);
        Arrays.fill(header, headerJson.length(), header.length, (byte) ' ');
        long dataStart = 8 + header.length;

        Path file = folder.resolve(Checkpoint.SINGLE_FILE);
        try (RandomAccessFile raw = new RandomAccessFile(file.toFile(), "rw")) {
            raw.setLength(dataStart + fillerBytes + 16);
            ByteBuffer prefix = ByteBuffer.allocate((int) dataStart).order(ByteOrder.LITTLE_ENDIAN);
            raw.write(prefix.putLong(header.length).put(header).array());
            raw.seek(dataStart + fillerBytes);
            raw.write(RawSafeTensors.f32(tail));
        }

        try (Checkpoint checkpoint = Checkpoint.open(folder)) {
            TensorInfo info = checkpoint.info("tail");
            assertThat(info.dataOffset()).isGreaterThan(Integer.MAX_VALUE);
            assertThat(checkpoint.floats("tail", 4)).containsExactly(tail);

            Matrix filler = checkpoint.matrix("filler", 32768, 16384);
            assertThat(filler.byteSize()).isEqualTo(fillerBytes);
            assertThat(filler.get(32767, 16383)).isZero();
            assertThat(filler.rowSlice(32767, 1).get(0, 0)).isZero();
        }
    }
}
