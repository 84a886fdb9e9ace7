package dev.coil.engine.load;

/**
 * A model folder Coil cannot read: a missing or malformed file, tensor or key. The message is a
 * complete sentence naming the file and the tensor or key, and what Coil supports.
 */
public class CheckpointException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    public CheckpointException(String message) {
        super(message);
    }

    public CheckpointException(String message, Throwable cause) {
        super(message, cause);
    }
}
