package dev.coil.engine.ops;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * An arena whose large segments sit on 2 MiB pages where Linux offers transparent huge pages: each
 * is an anonymous mapping aligned to 2 MiB and marked {@code madvise(MADV_HUGEPAGE)}; smaller
 * segments, and every segment elsewhere, come from the arena it wraps.
 *
 * <p>Why: a decode step on the CPU streams every weight once, a few megabytes per matrix, several
 * matrices' rows side by side. On 4 KiB pages each page is a TLB miss and a point where the hardware
 * prefetchers stop, since they do not cross a page; on 2 MiB pages a decode step took 7-25% less
 * time on the development machine (docs/performance.md, "Weights in memory on huge pages"). The
 * memory is zeroed, as {@link Arena#allocate} gives it, and unmapped when the wrapped
 * arena closes (or, for an automatic arena, when it is collected).
 */
public final class HugePageArena implements Arena {

    /** The huge page size of x86-64 and of arm64 with 4 KiB base pages. */
    public static final long HUGE_PAGE = 2L << 20;

    private static final int PROT_READ_WRITE = 0x1 | 0x2;
    private static final int MAP_PRIVATE_ANONYMOUS = 0x02 | 0x20;
    private static final int MADV_HUGEPAGE = 14;
    private static final Path THP_SETTING = Path.of("/sys/kernel/mm/transparent_hugepage/enabled");

    /** mmap, madvise and munmap, bound once; null where huge pages cannot be asked for. */
    private static final Native NATIVE = Native.bind();

    private final Arena owner;

    private HugePageArena(Arena owner) {
        this.owner = owner;
    }

    /** Segments freed together when this arena closes; usable from any thread. */
    public static HugePageArena ofShared() {
        return new HugePageArena(Arena.ofShared());
    }

    /** Segments freed once the arena and every segment from it are unreachable (never closed). */
    public static HugePageArena ofAuto() {
        return new HugePageArena(Arena.ofAuto());
    }

    /** Whether large segments get huge pages here: Linux on x86-64 or arm64, with THP always or madvise. */
    public static boolean available() {
        return NATIVE != null;
    }

    @Override
    public MemorySegment allocate(long byteSize, long byteAlignment) {
        if (NATIVE == null || byteSize < HUGE_PAGE || byteAlignment > HUGE_PAGE) {
            return owner.allocate(byteSize, byteAlignment);
        }
        long rounded = (byteSize + HUGE_PAGE - 1) & -HUGE_PAGE;
        // One huge page more than needed, so that a 2 MiB-aligned start lies inside the mapping.
        long mapped = rounded + HUGE_PAGE;
        MemorySegment base = NATIVE.map(mapped);
        if (base == null) {
            return owner.allocate(byteSize, byteAlignment); // no address space left for a mapping: as before
        }
        long start = (base.address() + HUGE_PAGE - 1) & -HUGE_PAGE;
        MemorySegment aligned = MemorySegment.ofAddress(start).reinterpret(rounded);
        NATIVE.adviseHugePages(aligned, rounded); // advice only: refused, the segment keeps small pages
        return aligned.reinterpret(byteSize, owner, segment -> NATIVE.unmap(base, mapped));
    }

    @Override
    public MemorySegment.Scope scope() {
        return owner.scope();
    }

    @Override
    public void close() {
        owner.close();
    }

    /** The C library's calls, on Linux only (the flags' values are Linux's on x86-64 and arm64). */
    private record Native(MethodHandle mmap, MethodHandle madvise, MethodHandle munmap) {

        static Native bind() {
            String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
            String arch = System.getProperty("os.arch", "");
            if (!os.contains("linux") || !(arch.equals("amd64") || arch.equals("x86_64") || arch.equals("aarch64"))
                    || !transparentHugePagesOffered()) {
                return null;
            }
            try {
                Linker linker = Linker.nativeLinker();
                SymbolLookup libc = linker.defaultLookup();
                MethodHandle mmap = linker.downcallHandle(libc.findOrThrow("mmap"),
                        FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG,
                                ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
                MethodHandle madvise = linker.downcallHandle(libc.findOrThrow("madvise"),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG,
                                ValueLayout.JAVA_INT));
                MethodHandle munmap = linker.downcallHandle(libc.findOrThrow("munmap"),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
                return new Native(mmap, madvise, munmap);
            } catch (RuntimeException | LinkageError e) {
                return null; // no native access granted, or no such symbols: small pages
            }
        }

        /** THP "always" or "madvise" (the kernel's file marks the active choice with brackets). */
        private static boolean transparentHugePagesOffered() {
            try {
                String setting = Files.readString(THP_SETTING);
                return setting.contains("[always]") || setting.contains("[madvise]");
            } catch (IOException | SecurityException e) {
                return false;
            }
        }

        /** An anonymous read-write mapping of {@code bytes}, or null when mmap fails. */
        MemorySegment map(long bytes) {
            try {
                MemorySegment address = (MemorySegment) mmap.invokeExact(MemorySegment.NULL, bytes, PROT_READ_WRITE,
                        MAP_PRIVATE_ANONYMOUS, -1, 0L);
                return address.address() == -1L ? null : address; // MAP_FAILED
            } catch (Throwable t) {
                throw new IllegalStateException("mmap of " + bytes + " bytes failed", t);
            }
        }

        void adviseHugePages(MemorySegment start, long bytes) {
            try {
                int ignored = (int) madvise.invokeExact(start, bytes, MADV_HUGEPAGE);
            } catch (Throwable t) {
                throw new IllegalStateException("madvise failed", t);
            }
        }

        void unmap(MemorySegment start, long bytes) {
            try {
                int ignored = (int) munmap.invokeExact(start, bytes);
            } catch (Throwable t) {
                throw new IllegalStateException("munmap failed", t);
            }
        }
    }
}
