package dev.coil.server.api;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.async.ByteArrayFeeder;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads the calls of one tool-call block as its text streams in: a JSON object
 * {@code {"name": ..., "arguments": {...}}} (or, in a format whose blocks list their calls, an array
 * of them), through Jackson's non-blocking parser fed a character at a time, so that each character
 * is checked as it arrives.
 * <p>
 * A call is made (its {@link Start} given back) once its name is known and its arguments have begun,
 * or once its object closes with a name and no arguments ({@code "arguments"} or {@code "parameters"},
 * the first of the two; none reads as {@code {}}). From then on it stays a call, and its arguments
 * come back in {@link Arguments} pieces as the parser takes their characters: as the model wrote
 * them (escapes and numbers as written, strings as they grow) but for whitespace outside strings,
 * until their object closes or the block ends. What follows a made call in its
 * block is read only to find further listed calls; anything that breaks the format there ends the
 * reading.
 * <p>
 * A block whose text breaks the format (not JSON, no name, arguments that are not an object, an
 * empty list) before its first call is made makes none: its reader gives it back as text.
 * What comes back does not depend on how the text is cut into pieces. Not thread-safe.
 */
final class CallScanner implements BlockScanner {

    /** What a block's text gives back. */
    sealed interface Event permits Start, Arguments {
    }

    /** A call is made: its function's name. Its arguments follow. */
    record Start(String name) implements Event, ToolCallReader.Piece {
    }

    /** The next piece of the arguments of the call made last (joined: a JSON object, no whitespace between tokens). */
    record Arguments(String text) implements Event, ToolCallReader.Piece {
    }

    /** The calls that a block's events, or a choice's, make: each name with its arguments joined. */
    static List<ToolCallReader.Call> calls(List<? extends Event> events) {
        List<String> names = new ArrayList<>();
        List<StringBuilder> arguments = new ArrayList<>();
        for (Event event : events) {
            switch (event) {
                case Start start -> {
                    names.add(start.name());
                    arguments.add(new StringBuilder());
                }
                case Arguments more -> arguments.getLast().append(more.text());
            }
        }
        List<ToolCallReader.Call> calls = new ArrayList<>();
        for (int i = 0; i < names.size(); i++) {
            calls.add(new ToolCallReader.Call(names.get(i), arguments.get(i).toString()));
        }
        return calls;
    }

    private final boolean listed;
    private final JsonParser parser;
    private final ByteArrayFeeder feeder;
    /** A high surrogate that ended a piece, held until the next piece completes its character. */
    private char heldSurrogate;

    /** Where the parser stands in the block's value. */
    private enum Place {
        BEFORE_VALUE, IN_LIST, IN_CALL, AFTER_NAME_KEY, AFTER_ARGUMENTS_KEY, IN_ARGUMENTS, SKIPPING, DONE
    }

    private Place place = Place.BEFORE_VALUE;
    /** Nesting inside the arguments, or inside the value being skipped. */
    private int depth;
    /** The current call's name, once read. */
    private String name;
    private boolean argumentsBegun;
    /** Arguments written and not yet given back: held while the call's name is not yet known. */
    private final StringBuilder written = new StringBuilder();
    /** Where the arguments' writing stands: inside a string, after its backslash. */
    private boolean inString;
    private boolean escaped;
    /** The current character closed the arguments: they are given back before a listed call after them starts. */
    private boolean argumentsClosed;
    private boolean started;
    private int made;

    CallScanner(boolean listed) {
        this.listed = listed;
        try {
            this.parser = Json.MAPPER.getFactory().createNonBlockingByteArrayParser();
        } catch (IOException impossible) {
            throw new IllegalStateException(impossible);
        }
        this.feeder = (ByteArrayFeeder) parser.getNonBlockingInputFeeder();
    }

    @Override
    public int made() {
        return made;
    }

    @Override
    public List<Event> feed(String text) {
        List<Event> events = new ArrayList<>();
        if (place == Place.DONE || text.isEmpty()) {
            return events;
        }
        String whole = heldSurrogate != 0 ? heldSurrogate + text : text;
        heldSurrogate = 0;
        if (Character.isHighSurrogate(whole.charAt(whole.length() - 1))) {
            heldSurrogate = whole.charAt(whole.length() - 1);
            whole = whole.substring(0, whole.length() - 1);
            if (whole.isEmpty()) {
                return events;
            }
        }
        // One character at a time, so that the parser's tokens say which characters are the arguments.
        for (int i = 0; i < whole.length() && place != Place.DONE; ) {
            int length = Character.charCount(whole.codePointAt(i));
            String character = whole.substring(i, i + length);
            i += length;
            byte[] bytes = character.getBytes(StandardCharsets.UTF_8);
            boolean wasInArguments = place == Place.IN_ARGUMENTS;
            try {
                feeder.feedInput(bytes, 0, bytes.length);
                JsonToken token;
                while (place != Place.DONE && (token = parser.nextToken()) != JsonToken.NOT_AVAILABLE
                        && token != null) {
                    take(token, events);
                }
            } catch (IOException broken) {
                stop();
                break;
            }
            // The character that opens the arguments leaves the parser in them; the one that closes them enters them.
            if (wasInArguments || place == Place.IN_ARGUMENTS) {
                writeArgument(character);
            }
            if (argumentsClosed) {
                argumentsClosed = false;
                flushArguments(events);
            }
        }
        flushArguments(events);
        return events;
    }

    /** Nothing is held back at a block's end: arguments cut short stay as written. */
    @Override
    public List<Event> finish() {
        return List.of();
    }

    /**
     * A character of the arguments as written, but whitespace outside their strings: the parser has
     * taken it (its token may still be open, so a string streams as it is written).
     */
    private void writeArgument(String character) {
        char c = character.charAt(0);
        if (inString) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                inString = false;
            }
        } else if (c == '"') {
            inString = true;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            return;
        }
        written.append(character);
    }

    /** One token of the block's value. */
    private void take(JsonToken token, List<Event> events) throws IOException {
        switch (place) {
            case BEFORE_VALUE -> {
                if (listed && token == JsonToken.START_ARRAY) {
                    place = Place.IN_LIST;
                } else if (!listed && token == JsonToken.START_OBJECT) {
                    beginCall();
                } else {
                    stop();
                }
            }
            case IN_LIST -> {
                if (token == JsonToken.START_OBJECT) {
                    beginCall();
                } else {
                    stop();  // a listed value that is no call, or the list's end
                }
            }
            case IN_CALL -> {
                if (token == JsonToken.END_OBJECT) {
                    endCall(events);
                } else if (token == JsonToken.FIELD_NAME) {
                    String key = parser.currentName();
                    if (key.equals("name") && name == null) {
                        place = Place.AFTER_NAME_KEY;
                    } else if ((key.equals("arguments") || key.equals("parameters")) && !argumentsBegun) {
                        place = Place.AFTER_ARGUMENTS_KEY;
                    } else {
                        place = Place.SKIPPING;
                        depth = 0;
                    }
                } else {
                    stop();
                }
            }
            case AFTER_NAME_KEY -> {
                if (token != JsonToken.VALUE_STRING) {
                    stop();
                    return;
                }
                name = parser.getText();
                place = Place.IN_CALL;
                if (argumentsBegun) {
                    start(events);
                }
            }
            case AFTER_ARGUMENTS_KEY -> {
                if (token != JsonToken.START_OBJECT) {
                    stop();
                    return;
                }
                argumentsBegun = true;
                depth = 1;
                place = Place.IN_ARGUMENTS;
                if (name != null) {
                    start(events);
                }
            }
            case IN_ARGUMENTS -> {
                depth += nesting(token);
                if (depth == 0) {
                    argumentsClosed = true;
                    place = Place.IN_CALL;
                }
            }
            case SKIPPING -> {
                depth += nesting(token);
                if (depth == 0) {
                    place = Place.IN_CALL;
                }
            }
            case DONE -> {
            }
        }
    }

    private static int nesting(JsonToken token) {
        return switch (token) {
            case START_OBJECT, START_ARRAY -> 1;
            case END_OBJECT, END_ARRAY -> -1;
            default -> 0;
        };
    }

    private void beginCall() {
        place = Place.IN_CALL;
        name = null;
        argumentsBegun = false;
        started = false;
    }

    /** The call's object closed: made now if it had a name and no arguments. */
    private void endCall(List<Event> events) {
        if (name == null) {
            stop();
            return;
        }
        if (!argumentsBegun) {
            start(events);
            events.add(new Arguments("{}"));
        }
        place = listed ? Place.IN_LIST : Place.DONE;
    }

    /** The call is made: its name, then the arguments held while the name was not known. */
    private void start(List<Event> events) {
        started = true;
        made++;
        events.add(new Start(name));
        flushArguments(events);
    }

    /** Arguments written since the last piece, given back once the call is made (else kept). */
    private void flushArguments(List<Event> events) {
        if (started && !written.isEmpty()) {
            events.add(new Arguments(written.toString()));
            written.setLength(0);
        }
    }

    /** The format is broken here, or the list has ended: the block's reading ends. */
    private void stop() {
        place = Place.DONE;
    }
}
