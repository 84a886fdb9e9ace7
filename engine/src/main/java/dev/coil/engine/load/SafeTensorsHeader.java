package dev.coil.engine.load;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The JSON header of a safetensors file, checked against the file it came from:
 * {name: {"dtype": "BF16", "shape": [rows, cols], "data_offsets": [begin, end]}, "__metadata__": {...}},
 * where begin and end count bytes from the end of the header.
 */
record SafeTensorsHeader(Map<String, TensorInfo> tensors, Map<String, String> metadata) {

    private static final ObjectMapper JSON = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .build();

    /**
     * @param headerBytes the UTF-8 JSON between the 8-byte length and the data
     * @param dataStart   file offset of the first data byte (8 + header length)
     * @param fileSize    the whole file's size, to catch truncated files
     */
    static SafeTensorsHeader parse(String file, byte[] headerBytes, long dataStart, long fileSize) {
        JsonNode root = readJson(file, headerBytes);
        if (!root.isObject()) {
            throw new CheckpointException(file + ": the header is a JSON " + root.getNodeType().name().toLowerCase()
                    + ", not an object mapping tensor names to {dtype, shape, data_offsets}.");
        }
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        Map<String, String> metadata = Map.of();
        for (Map.Entry<String, JsonNode> entry : root.properties()) {
            if (entry.getKey().equals("__metadata__")) {
                metadata = readMetadata(file, entry.getValue());
            } else {
                TensorInfo info = readTensor(file, entry.getKey(), entry.getValue(), dataStart, fileSize);
                tensors.put(info.name(), info);
            }
        }
        return new SafeTensorsHeader(Collections.unmodifiableMap(tensors), metadata);
    }

    private static JsonNode readJson(String file, byte[] headerBytes) {
        try {
            JsonNode root = JSON.readTree(headerBytes);
            if (root == null || root.isMissingNode()) {
                throw new CheckpointException(file + ": the header is empty; expected a JSON object.");
            }
            return root;
        } catch (JacksonException e) {
            JsonLocation where = e.getLocation();
            String position = where == null ? "" : " at line " + where.getLineNr() + ", column " + where.getColumnNr();
            throw new CheckpointException(
                    file + ": the header is not valid JSON" + position + " (" + e.getOriginalMessage() + ").", e);
        } catch (IOException e) {
            throw new CheckpointException(file + ": the header cannot be read (" + e.getMessage() + ").", e);
        }
    }

    private static Map<String, String> readMetadata(String file, JsonNode node) {
        if (!node.isObject()) {
            throw new CheckpointException(file + ": '__metadata__' is not an object of strings.");
        }
        Map<String, String> metadata = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> entry : node.properties()) {
            JsonNode value = entry.getValue();
            metadata.put(entry.getKey(), value.isTextual() ? value.textValue() : value.toString());
        }
        return Collections.unmodifiableMap(metadata);
    }

    private static TensorInfo readTensor(String file, String name, JsonNode node, long dataStart, long fileSize) {
        String where = file + ": tensor '" + name + "'";
        if (!node.isObject()) {
            throw new CheckpointException(where + " is described by " + node + ", not an object {dtype, shape, data_offsets}.");
        }
        DType dtype = readDType(where, field(where, node, "dtype"));
        long[] shape = readShape(where, field(where, node, "shape"));
        long[] offsets = readOffsets(where, field(where, node, "data_offsets"));
        long begin = offsets[0];
        long end = offsets[1];

        long needed;
        try {
            needed = dtype.bytes();
            for (long dim : shape) {
                needed = Math.multiplyExact(needed, dim);
            }
        } catch (ArithmeticException e) {
            throw new CheckpointException(where + " has shape " + TensorInfo.shapeText(shape) + ", too large to address.");
        }
        if (end - begin != needed) {
            throw new CheckpointException(where + " has data_offsets [" + begin + ", " + end + "] (" + (end - begin)
                    + " bytes) but shape " + TensorInfo.shapeText(shape) + " in " + dtype + " needs " + needed + " bytes.");
        }
        long dataBytes = fileSize - dataStart;
        if (end > dataBytes) {
            throw new CheckpointException(where + " ends at data byte " + end + " but the file holds only " + dataBytes
                    + " data bytes; the file is truncated.");
        }
        return new TensorInfo(name, dtype, shape, dataStart + begin, needed, file);
    }

    private static JsonNode field(String where, JsonNode node, String key) {
        JsonNode value = node.get(key);
        if (value == null || value.isNull()) {
            throw new CheckpointException(where + " has no '" + key + "'; each tensor needs dtype, shape and data_offsets.");
        }
        return value;
    }

    private static DType readDType(String where, JsonNode node) {
        DType dtype = node.isTextual() ? DType.fromSafetensors(node.textValue()) : null;
        if (dtype == null) {
            String found = node.isTextual() ? node.textValue() : node.toString();
            throw new CheckpointException(where + " has dtype " + found + "; Coil reads " + DType.SUPPORTED + ".");
        }
        return dtype;
    }

    private static long[] readShape(String where, JsonNode node) {
        if (!node.isArray()) {
            throw new CheckpointException(where + " has shape " + node + "; expected a list of dims.");
        }
        long[] shape = new long[node.size()];
        for (int i = 0; i < shape.length; i++) {
            JsonNode dim = node.get(i);
            if (!isLong(dim) || dim.longValue() < 0) {
                throw new CheckpointException(where + " has shape " + node + "; dims must be non-negative integers.");
            }
            shape[i] = dim.longValue();
        }
        return shape;
    }

    private static long[] readOffsets(String where, JsonNode node) {
        boolean valid = node.isArray() && node.size() == 2 && isLong(node.get(0)) && isLong(node.get(1))
                && node.get(0).longValue() >= 0 && node.get(0).longValue() <= node.get(1).longValue();
        if (!valid) {
            throw new CheckpointException(where + " has data_offsets " + node + "; expected [begin, end] with 0 <= begin <= end.");
        }
        return new long[] {node.get(0).longValue(), node.get(1).longValue()};
    }

    private static boolean isLong(JsonNode node) {
        return node.isIntegralNumber() && node.canConvertToLong();
    }
}
