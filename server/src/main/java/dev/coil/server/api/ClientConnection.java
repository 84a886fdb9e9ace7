package dev.coil.server.api;

import io.javalin.http.Context;
import java.io.IOException;
import java.nio.ByteBuffer;
import org.eclipse.jetty.ee10.servlet.ServletContextRequest;
import org.eclipse.jetty.http.HttpVersion;
import org.eclipse.jetty.io.EndPoint;
import org.eclipse.jetty.io.SocketChannelEndPoint;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.util.BufferUtil;

/**
 * Whether the client of one generation request is still connected, asked by the thread that waits
 * for the request's answer. Jetty reads an HTTP/1 connection only while a handler asks for request
 * content, so without this a client that closes its socket while its request is queued or its prompt
 * is prefilled is noticed only by the next write: a streamed answer's first token, a whole answer's
 * end. {@link #isClosed} reads the connection without blocking, at most every {@link #PROBE_MILLIS}:
 * end of stream or a reset means the client has gone (a client that closes only its sending side
 * counts as gone too, as nginx counts it).
 *
 * <p>NOTE: a read takes what it finds off the connection. After a POST a client must not send its
 * next request before the answer (RFC 9112, section 9.3.2), so bytes found here break that rule:
 * they are dropped, the connection is no longer read, and, when the answer's headers are not yet
 * sent, the answer closes the connection, so that what follows the dropped bytes is never parsed as
 * a request.
 *
 * <p>Only a plain HTTP/1 connection whose request body has been read is probed (Coil serves neither
 * TLS nor HTTP/2); elsewhere {@link #isClosed} stays false and the next write notices a closed
 * client, as before. One thread uses an instance.
 */
final class ClientConnection {

    /**
     * How often the connection is read: well within one prompt step on the CPU (a step of 1024
     * prompt tokens of the demo model takes about half a second), so the engine frees a disconnected
     * request's cache at about its next step, for the cost of one system call a tenth of a second.
     */
    static final long PROBE_MILLIS = 100;

    private final Context ctx;
    private final ByteBuffer scratch = BufferUtil.allocate(256);
    private EndPoint endPoint;
    private long nextProbeNanos;
    private boolean closed;

    private ClientConnection(Context ctx, EndPoint endPoint) {
        this.ctx = ctx;
        this.endPoint = endPoint;
        this.nextProbeNanos = System.nanoTime();
    }

    /** The connection of {@code ctx}'s request; its body must have been read already. */
    static ClientConnection of(Context ctx) {
        return new ClientConnection(ctx, probedEndPoint(ctx));
    }

    /** Whether the client has closed the connection; reads it when the last read is a probe interval old. */
    boolean isClosed() {
        if (closed || endPoint == null) {
            return closed;
        }
        long now = System.nanoTime();
        if (now - nextProbeNanos < 0) {
            return false;
        }
        nextProbeNanos = now + PROBE_MILLIS * 1_000_000;
        int read;
        try {
            read = endPoint.fill(scratch);
        } catch (IOException reset) {
            read = -1;
        }
        if (read < 0) {
            closed = true;
        } else if (read > 0) {
            BufferUtil.clear(scratch);
            endPoint = null;
            if (!ctx.res().isCommitted()) {
                ctx.header("Connection", "close");
            }
        }
        return closed;
    }

    /** The endpoint to read, or null where reading it could take bytes Jetty still needs. */
    private static EndPoint probedEndPoint(Context ctx) {
        try {
            if (!ctx.req().getInputStream().isFinished()) {
                return null;
            }
        } catch (IOException e) {
            return null;
        }
        Request request = ServletContextRequest.getServletContextRequest(ctx.req());
        if (request == null) {
            return null;
        }
        HttpVersion version = request.getConnectionMetaData().getHttpVersion();
        EndPoint endPoint = request.getConnectionMetaData().getConnection().getEndPoint();
        boolean plainHttp1 = (version == HttpVersion.HTTP_1_1 || version == HttpVersion.HTTP_1_0)
                && endPoint instanceof SocketChannelEndPoint;
        return plainHttp1 ? endPoint : null;
    }
}
