package dev.coil.engine.runner;

import java.util.Map;

/**
 * The patterns a string of a known {@code format} is held to. JSON Schema 2020-12 reads {@code format}
 * as an annotation by default; structured outputs hold the string to it where they know the format,
 * as vLLM's xgrammar backend does, so that a pydantic {@code date} or {@code UUID} field comes out as
 * one. Each pattern is a subset of what its RFC allows, every text of it parseable by java.time or
 * java.util.UUID: {@code date} (RFC 3339 full-date, the days of each month and of February in leap
 * years), {@code time} (full-time: seconds to 59, up to nine digits of fraction, {@code Z} or an
 * offset within 18 hours, as java.time takes them), {@code date-time}, {@code uuid}, {@code ipv4} (no leading zeros), {@code email} (a dot-atom
 * at a domain of two labels or more). Other formats stay annotations.
 */
final class StringFormats {

    private static final String DAY_OF_31 = "(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])";
    private static final String DAY_OF_30 = "(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)";
    private static final String DAY_OF_FEBRUARY = "02-(?:0[1-9]|1[0-9]|2[0-8])";
    /** Years divisible by 4 but not by 100, or by 400. */
    private static final String LEAP_YEAR = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)";
    static final String DATE = "(?:[0-9]{4}-(?:" + DAY_OF_31 + "|" + DAY_OF_30 + "|" + DAY_OF_FEBRUARY + ")|"
            + LEAP_YEAR + "-02-29)";
    static final String TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,9})?"
            + "(?:Z|[+-](?:(?:0[0-9]|1[0-7]):[0-5][0-9]|18:00))";
    private static final String OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
    private static final String ATOM = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
    private static final String LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";

    private static final Map<String, String> PATTERNS = Map.of(
            "date", DATE,
            "time", TIME,
            "date-time", DATE + "T" + TIME,
            "uuid", "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
            "ipv4", "(?:" + OCTET + "\\.){3}" + OCTET,
            "email", ATOM + "(?:\\." + ATOM + ")*@" + LABEL + "(?:\\." + LABEL + ")+");

    private StringFormats() {
    }

    /** The pattern of {@code format}, or null for a format held to nothing. */
    static String pattern(String format) {
        return PATTERNS.get(format);
    }
}
