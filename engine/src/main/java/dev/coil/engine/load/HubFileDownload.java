package dev.coil.engine.load;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.HexFormat;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * One file of a Hub repository brought into the cache: streamed to {@code blobs/HASH.incomplete},
 * checked against the size and hash the Hub lists for it (an LFS file's sha256, a small file's git
 * blob hash), moved to {@code blobs/HASH} and linked from the snapshot. A transfer cut off leaves its
 * {@code .incomplete} file, which the next attempt goes on from with an HTTP range, as huggingface_hub
 * does; a file that turns out wrong is deleted.
 */
final class HubFileDownload {

    /** Files larger than this say how far they have come, every {@link #PROGRESS_NANOS}. */
    private static final long LOGGED_SIZE = 10_000_000;
    private static final long PROGRESS_NANOS = 10_000_000_000L;

    /** A GET of the file, from byte {@code from} on (0: all of it); the body of a 200 or a 206. */
    interface Source {
        HttpResponse<InputStream> open(long from) throws IOException;
    }

    /** Watches transfers for stalls: a connection that sends nothing stays open, and a read on it waits on. */
    private static final ScheduledExecutorService WATCH = Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().name("coil-hub-stall-watch").daemon().factory());

    private final String label;
    private final long size;
    private final String lfsHash;
    private final String blobId;
    private final Consumer<String> log;
    private final Duration stallLimit;

    /**
     * @param label the repository and the file's name, for messages
     * @param sibling the file's entry in the Hub's list: {@code size}, {@code blobId}, {@code lfs}
     * @param stallLimit how long a transfer may send nothing before it is given up (its part kept)
     */
    HubFileDownload(String label, JsonNode sibling, Consumer<String> log, Duration stallLimit) {
        this.label = label;
        this.size = sibling.path("lfs").path("size").asLong(sibling.path("size").asLong(-1));
        this.lfsHash = sibling.path("lfs").path("sha256").asText(null);
        this.blobId = sibling.path("blobId").asText(null);
        this.log = log;
        this.stallLimit = stallLimit;
    }

    /** Brings the file to {@code target} (a link into {@code blobs}) from {@code source}. */
    void into(Path target, Path blobs, Source source) throws IOException {
        Files.createDirectories(blobs);
        String expected = lfsHash != null ? lfsHash : blobId;
        if (expected != null && Files.isRegularFile(blobs.resolve(expected))) {
            link(target, blobs.resolve(expected)); // another revision brought the same file
            return;
        }
        Path partial = expected != null ? blobs.resolve(expected + ".incomplete")
                : Files.createTempFile(blobs, "download-", ".incomplete");
        // Kept while a transfer may go on from it: a cut connection or a refusal leaves it.
        boolean keep = expected != null;
        try {
            Digests digests = new Digests(size);
            long have = Files.exists(partial) ? digests.read(partial) : 0;
            if (size >= 0 && have > size) {
                digests = new Digests(size);
                have = 0;
            }
            long written = have;
            if (size < 0 || have < size) {
                if (size > LOGGED_SIZE) {
                    log.accept(String.format("coil: downloading %s (%.0f MB%s)", label, size / 1e6,
                            have > 0 ? String.format(", going on from %.0f MB", have / 1e6) : ""));
                }
                HttpResponse<InputStream> response = source.open(have);
                if (response.statusCode() != 206 && have > 0) {
                    digests = new Digests(size); // the server sent the whole file: start again
                    have = 0;
                }
                written = have + copy(response.body(), partial, have > 0, digests, have);
            }
            keep = false;
            check(written, digests);
            // The blob's name as huggingface_hub gives it: an LFS file's sha256, a small file's git hash.
            Path blob = blobs.resolve(expected != null ? expected : digests.sha256());
            Files.move(partial, blob, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            link(target, blob);
        } finally {
            if (!keep) {
                Files.deleteIfExists(partial);
            }
        }
    }

    /** {@code target} made a relative link to {@code blob} (a copy where links cannot be made), replacing a dead one. */
    private static void link(Path target, Path blob) throws IOException {
        Files.createDirectories(target.getParent());
        Files.deleteIfExists(target);
        try {
            Files.createSymbolicLink(target, target.getParent().relativize(blob));
        } catch (UnsupportedOperationException | FileSystemException noLinks) {
            Files.copy(blob, target, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /**
     * Appends (or writes anew) the body to {@code partial}; returns the bytes it held. A body that
     * sends nothing for {@link #stallLimit} is closed under the read, which then fails: the part so
     * far stays for the next start.
     */
    private long copy(InputStream response, Path partial, boolean append, Digests digests, long had) throws IOException {
        long copied = 0;
        long started = System.nanoTime();
        long lastSaid = started;
        AtomicLong lastBytes = new AtomicLong(started);
        AtomicBoolean stalled = new AtomicBoolean();
        long checkNanos = Math.max(1, stallLimit.toNanos() / 4);
        ScheduledFuture<?> watch = WATCH.scheduleAtFixedRate(() -> {
            if (System.nanoTime() - lastBytes.get() > stallLimit.toNanos() && stalled.compareAndSet(false, true)) {
                try {
                    response.close();
                } catch (IOException ignored) {
                    // the read it unblocks says what happened
                }
            }
        }, checkNanos, checkNanos, TimeUnit.NANOSECONDS);
        try (InputStream body = response;
                OutputStream out = Files.newOutputStream(partial, StandardOpenOption.CREATE,
                        append ? StandardOpenOption.APPEND : StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE)) {
            byte[] buffer = new byte[1 << 16];
            for (int read; (read = body.read(buffer)) > 0; ) {
                out.write(buffer, 0, read);
                digests.update(buffer, read);
                copied += read;
                long now = System.nanoTime();
                lastBytes.set(now);
                if (size > LOGGED_SIZE && now - lastSaid > PROGRESS_NANOS) {
                    log.accept(String.format("coil: %s: %.0f of %.0f MB (%.0f MB/s)", label, (had + copied) / 1e6,
                            size / 1e6, copied / 1e6 / ((now - started) / 1e9)));
                    lastSaid = now;
                }
            }
        } catch (IOException e) {
            throw stalled.get() ? new IOException("nothing came for " + stallLimit.toSeconds() + " s", e) : e;
        } finally {
            watch.cancel(false);
        }
        if (stalled.get()) {
            throw new IOException("nothing came for " + stallLimit.toSeconds() + " s");
        }
        return copied;
    }

    private void check(long written, Digests digests) {
        if (size >= 0 && written != size) {
            throw new CheckpointException(label + " came as " + written + " bytes; the Hub lists " + size + ".");
        }
        if (lfsHash != null && !lfsHash.equals(digests.sha256())) {
            throw new CheckpointException(label + " does not match its sha256 on the Hub (" + lfsHash + ", downloaded "
                    + digests.sha256() + ").");
        }
        if (lfsHash == null && blobId != null && size >= 0 && !blobId.equals(digests.gitHash())) {
            throw new CheckpointException(label + " does not match its git hash on the Hub (" + blobId + ", downloaded "
                    + digests.gitHash() + ").");
        }
    }

    /** sha256 of the bytes, and git's blob hash (sha1 of "blob SIZE\0" and the bytes, where the size is known). */
    private static final class Digests {

        private final MessageDigest sha256;
        private final MessageDigest gitHash;

        Digests(long size) {
            try {
                sha256 = MessageDigest.getInstance("SHA-256");
                gitHash = MessageDigest.getInstance("SHA-1");
            } catch (NoSuchAlgorithmException e) {
                throw new IllegalStateException(e);
            }
            if (size >= 0) {
                gitHash.update(("blob " + size + "\0").getBytes(StandardCharsets.US_ASCII));
            }
        }

        void update(byte[] bytes, int length) {
            sha256.update(bytes, 0, length);
            gitHash.update(bytes, 0, length);
        }

        /** Takes in the bytes of {@code file}; returns how many. */
        long read(Path file) throws IOException {
            long total = 0;
            try (InputStream in = Files.newInputStream(file)) {
                byte[] buffer = new byte[1 << 16];
                for (int read; (read = in.read(buffer)) > 0; ) {
                    update(buffer, read);
                    total += read;
                }
            }
            return total;
        }

        String sha256() {
            return HexFormat.of().formatHex(((MessageDigest) clone(sha256)).digest());
        }

        String gitHash() {
            return HexFormat.of().formatHex(((MessageDigest) clone(gitHash)).digest());
        }

        private static Object clone(MessageDigest digest) {
            try {
                return digest.clone();
            } catch (CloneNotSupportedException e) {
                throw new IllegalStateException(e);
            }
        }
    }
}
