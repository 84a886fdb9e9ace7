package dev.coil.engine.load;

import static org.assertj.core.api.Assertions.assertThat;

import dev.coil.engine.ops.Matrix;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class SafeTensorsRoundTripTest {

    @TempDir
    Path folder;

    private static float[] randomValues(int count, long seed) {
        Random random = new Random(seed);
        float[] values = new float[count];
        for (int i = 0; i < count; i++) {
            values[i] = (float) random.nextGaussian() * 3;
        }
        return values;
    }

    /** What storing {@code value} in {@code dtype} keeps. */
    private static float rounded(DType dtype, float value) {
        return switch (dtype) {
            case F32 -> value;
            case BF16 -> Matrix.bf16ToFloat(Matrix.floatToBf16(value));
            case F16 -> Float.float16ToFloat(Float.floatToFloat16(value));
        };
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void valuesSurviveWriteAndReadRoundedToTheStoredDtype(DType dtype) throws IOException {
        float[] weight = randomValues(6 * 5, 1);
        float[] norm = randomValues(5, 2);
        Path file = folder.resolve("model.safetensors");
        SafeTensorsWriter.write(file, Map.of(
                "layer.weight", TensorSource.of(dtype, weight, 6, 5),
                "layer.norm", TensorSource.of(dtype, norm, 5)));

        try (Checkpoint checkpoint = Checkpoint.open(folder)) {
            Matrix matrix = checkpoint.matrix("layer.weight", 6, 5);
            assertThat(matrix.dtype()).isEqualTo(dtype);
            for (int r = 0; r < 6; r++) {
                for (int c = 0; c < 5; c++) {
                    assertThat(matrix.get(r, c)).isEqualTo(rounded(dtype, weight[r * 5 + c]));
                }
            }
            float[] normRead = checkpoint.floats("layer.norm", 5);
            for (int i = 0; i < 5; i++) {
                assertThat(normRead[i]).isEqualTo(rounded(dtype, norm[i]));
            }
            assertThat(checkpoint.names()).containsExactly("layer.norm", "layer.weight");
            assertThat(checkpoint.parameterCount()).isEqualTo(35);
        }
    }

    @Test
    void roundingIsTheOneTorchUses() {
        // 1 + 2^-8 lies halfway between two bf16 values; ties go to the even mantissa (1.0).
        assertThat(rounded(DType.BF16, 1 + 0x1p-8f)).isEqualTo(1.0f);
        assertThat(rounded(DType.BF16, 1 + 3 * 0x1p-8f)).isEqualTo(1 + 0x1p-6f);
        assertThat(rounded(DType.F16, 65504f)).isEqualTo(65504f);
    }

    @Test
    void headerIsSortedPaddedAndCarriesFormatMetadata() throws IOException {
        Path file = folder.resolve("x.safetensors");
        SafeTensorsWriter.write(file, Map.of(
                "b", TensorSource.of(DType.F16, new float[] {1, 2, 3}, 3),
                "a", TensorSource.of(DType.F32, new float[] {4}, 1)),
                Map.of("origin", "test"));

        ByteBuffer prefix = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        long headerLength = prefix.getLong();
        assertThat(headerLength % 8).isZero();
        assertThat(Files.size(file)).isEqualTo(8 + headerLength + 4 + 3 * 2);

        try (SafeTensorsFile read = SafeTensorsFile.open(file)) {
            assertThat(read.tensors().keySet()).containsExactly("a", "b");
            assertThat(read.metadata()).containsEntry("format", "pt").containsEntry("origin", "test");
            TensorInfo b = read.info("b");
            assertThat(b.dtype()).isEqualTo(DType.F16);
            assertThat(b.shape()).containsExactly(3);
            assertThat(b.dataOffset()).isEqualTo(8 + headerLength + 4);
            assertThat(b.byteSize()).isEqualTo(6);
            assertThat(b.file()).isEqualTo("x.safetensors");
            assertThat(read.data("b").byteSize()).isEqualTo(6);
        }
    }

    /** Values produced on the fly, across several write chunks, without a whole-tensor array. */
    @Test
    void streamedSourceIsWrittenElementForElement() throws IOException {
        long rows = 700;
        long cols = 1000; // 700 000 elements: more than two chunks of 2^18
        TensorSource ramp = new TensorSource() {
            @Override
            public DType dtype() {
                return DType.F32;
            }

            @Override
            public long[] shape() {
                return new long[] {rows, cols};
            }

            @Override
            public void fill(long offset, float[] chunk) {
                for (int i = 0; i < chunk.length; i++) {
                    chunk[i] = offset + i;
                }
            }
        };
        SafeTensorsWriter.write(folder.resolve("model.safetensors"), Map.of("ramp", ramp));

        try (Checkpoint checkpoint = Checkpoint.open(folder)) {
            Matrix matrix = checkpoint.matrix("ramp", 700, 1000);
            for (int row : new int[] {0, 262, 263, 524, 699}) {
                for (int col : new int[] {0, 143, 144, 999}) {
                    assertThat(matrix.get(row, col)).isEqualTo((float) (row * 1000L + col));
                }
            }
        }
    }

    @Test
    void convolutionWeightsFlattenToChannelsTimesKernel() throws IOException {
        float[] conv = randomValues(3 * 4, 3);
        SafeTensorsWriter.write(folder.resolve("model.safetensors"),
                Map.of("conv1d.weight", TensorSource.of(DType.BF16, conv, 3, 1, 4)));
        try (Checkpoint checkpoint = Checkpoint.open(folder)) {
            float[] read = checkpoint.floats("conv1d.weight", 3, 1, 4);
            assertThat(read).hasSize(12);
            assertThat(read[7]).isEqualTo(rounded(DType.BF16, conv[7]));
        }
    }

    @Test
    void scalarsAndEmptyTensorsAreValid() throws IOException {
        SafeTensorsWriter.write(folder.resolve("model.safetensors"), Map.of(
                "scale", TensorSource.of(DType.F32, new float[] {2.5f}),
                "none", TensorSource.of(DType.F32, new float[0], 0, 4)));
        try (Checkpoint checkpoint = Checkpoint.open(folder)) {
            assertThat(checkpoint.floats("scale")).containsExactly(2.5f);
            assertThat(checkpoint.info("none").byteSize()).isZero();
            assertThat(checkpoint.floats("none", 0, 4)).isEmpty();
        }
    }
}
