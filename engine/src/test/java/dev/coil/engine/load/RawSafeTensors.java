package dev.coil.engine.load;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Writes safetensors files byte by byte, including broken ones the writer would never produce. */
final class RawSafeTensors {

    private RawSafeTensors() {}

    /** [header length][header JSON][data]. */
    static Path write(Path file, String headerJson, byte[] data) throws IOException {
        byte[] header = headerJson.getBytes(StandardCharsets.UTF_8);
        return write(file, header.length, header, data);
    }

    /** A file whose length prefix says {@code declaredLength}, whatever follows. */
    static Path write(Path file, long declaredLength, byte[] header, byte[] data) throws IOException {
        ByteBuffer bytes = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        bytes.putLong(declaredLength).put(header).put(data);
        Files.write(file, bytes.array());
        return file;
    }

    /** Little-endian f32 bytes of {@code values}. */
    static byte[] f32(float... values) {
        ByteBuffer bytes = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float value : values) {
            bytes.putFloat(value);
        }
        return bytes.array();
    }
}
