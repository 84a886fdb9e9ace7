package dev.coil.server.api;

import java.util.List;

/**
 * Reads the calls of one tool-call block as its text streams in, in one {@link ToolCallFormat}'s
 * writing: JSON ({@link CallScanner}) or tags ({@link XmlCallScanner}). What comes back does not depend
 * on how the text is cut into pieces.
 */
interface BlockScanner {

    /** Calls made so far. */
    int made();

    /** The block's next piece of text; returns the events it completes. */
    List<CallScanner.Event> feed(String text);

    /** The block has ended (its end tag, or the output's end): the events still held back. */
    List<CallScanner.Event> finish();
}
