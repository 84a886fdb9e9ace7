package dev.coil.engine.load;

import static dev.coil.engine.load.RawSafeTensors.f32;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.assertj.core.api.AbstractThrowableAssert;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every malformed file fails with a CheckpointException naming the file and what is wrong. */
class SafeTensorsFileErrorsTest {

    @TempDir
    Path folder;

    private AbstractThrowableAssert<?, ? extends Throwable> assertOpenFails(Path file) {
        return assertThatThrownBy(() -> SafeTensorsFile.open(file).close())
                .isInstanceOf(CheckpointException.class)
                .hasMessageContaining(file.getFileName().toString());
    }

    private Path withHeader(String header, byte[] data) throws IOException {
        return RawSafeTensors.write(folder.resolve("model.safetensors"), header, data);
    }

    @Test
    void validFileOpens() throws IOException {
        Path file = withHeader("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", f32(1, 2));
        try (SafeTensorsFile read = SafeTensorsFile.open(file)) {
            assertThat(read.info("w").shape()).containsExactly(2);
            assertThat(read.metadata()).isEmpty();
        }
    }

    @Test
    void fileShorterThanTheLengthPrefix() throws IOException {
        Path file = Files.write(folder.resolve("short.safetensors"), new byte[5]);
        assertOpenFails(file).hasMessageContaining("5 bytes");
    }

    @Test
    void missingFile() {
        assertOpenFails(folder.resolve("absent.safetensors")).hasMessageContaining("does not exist");
    }

    @Test
    void headerLengthPastTheEndOfTheFile() throws IOException {
        byte[] header = "{}".getBytes(StandardCharsets.UTF_8);
        Path file = RawSafeTensors.write(folder.resolve("model.safetensors"), 4096, header, new byte[0]);
        assertOpenFails(file).hasMessageContaining("4096").hasMessageContaining("truncated");
    }

    @Test
    void absurdHeaderLength() throws IOException {
        Path file = RawSafeTensors.write(folder.resolve("model.safetensors"), -1L, new byte[8], new byte[0]);
        assertOpenFails(file).hasMessageContaining("100 MB");
    }

    @Test
    void headerThatIsNotJson() throws IOException {
        assertOpenFails(withHeader("{\"w\": {\"dtype\": ", new byte[0])).hasMessageContaining("not valid JSON");
    }

    @Test
    void headerThatIsNotAnObject() throws IOException {
        assertOpenFails(withHeader("[1, 2]", new byte[0])).hasMessageContaining("array");
    }

    @Test
    void entryMissingAField() throws IOException {
        assertOpenFails(withHeader("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", f32(1, 2)))
                .hasMessageContaining("'w'").hasMessageContaining("'shape'");
        assertOpenFails(withHeader("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", f32(1, 2)))
                .hasMessageContaining("'w'").hasMessageContaining("'dtype'");
        assertOpenFails(withHeader("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", f32(1, 2)))
                .hasMessageContaining("'w'").hasMessageContaining("'data_offsets'");
    }

    @Test
    void unsupportedDtype() throws IOException {
        Path file = withHeader(
                "{\"model.layers.0.mamba.A_log\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", new byte[8]);
        assertOpenFails(file)
                .hasMessageContaining("'model.layers.0.mamba.A_log'")
                .hasMessageContaining("I64")
                .hasMessageContaining("F32, BF16 and F16");
    }

    @Test
    void offsetsThatDisagreeWithTheShape() throws IOException {
        Path file = withHeader("{\"w\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,8]}}", new byte[8]);
        assertOpenFails(file).hasMessageContaining("'w'").hasMessageContaining("needs 6 bytes");
    }

    @Test
    void dataPastTheEndOfTheFile() throws IOException {
        Path file = withHeader("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", f32(1, 2, 3));
        assertOpenFails(file).hasMessageContaining("'w'").hasMessageContaining("truncated");
    }

    @Test
    void negativeDimension() throws IOException {
        Path file = withHeader("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,0]}}", new byte[0]);
        assertOpenFails(file).hasMessageContaining("'w'").hasMessageContaining("non-negative");
    }

    @Test
    void offsetsOutOfOrder() throws IOException {
        Path file = withHeader("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", new byte[8]);
        assertOpenFails(file).hasMessageContaining("'w'").hasMessageContaining("data_offsets");
    }

    @Test
    void shapeTooLargeToAddress() throws IOException {
        Path file = withHeader("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}",
                new byte[0]);
        assertOpenFails(file).hasMessageContaining("'w'").hasMessageContaining("too large");
    }

    @Test
    void duplicateTensorNames() throws IOException {
        String entry = "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}";
        assertOpenFails(withHeader("{" + entry + "," + entry + "}", f32(1))).hasMessageContaining("w");
    }
}
