package dev.coil.engine.runner;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.networknt.schema.Error;
import com.networknt.schema.SchemaRegistry;
import com.networknt.schema.SpecificationVersion;
import java.util.List;

/** An independent judge of structured outputs: networknt's JSON Schema validator (draft 2020-12). */
final class SchemaOracle {

    /** Numbers read exactly (BigDecimal, BigInteger), so that a 20-digit multiple is judged as written, not as a double. */
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
            .enable(DeserializationFeature.USE_BIG_INTEGER_FOR_INTS);
    private static final SchemaRegistry REGISTRY =
            SchemaRegistry.withDefaultDialect(SpecificationVersion.DRAFT_2020_12);

    private SchemaOracle() {
    }

    /** The validator's complaints about {@code instance} (JSON text) under {@code schema}; empty when valid. */
    static List<String> errors(String schema, String instance) throws Exception {
        JsonNode value = JSON.readTree(instance);
        List<Error> errors = REGISTRY.getSchema(JSON.readTree(schema)).validate(value);
        return errors.stream().map(Error::toString).toList();
    }
}
