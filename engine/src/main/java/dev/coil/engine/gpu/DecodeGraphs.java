package dev.coil.engine.gpu;

import static jcuda.driver.JCudaDriver.cuGraphDestroy;
import static jcuda.driver.JCudaDriver.cuGraphExecDestroy;
import static jcuda.driver.JCudaDriver.cuGraphInstantiate;
import static jcuda.driver.JCudaDriver.cuGraphLaunch;
import static jcuda.driver.JCudaDriver.cuStreamBeginCapture;
import static jcuda.driver.JCudaDriver.cuStreamEndCapture;

import java.util.HashMap;
import java.util.Map;
import jcuda.driver.CUgraph;
import jcuda.driver.CUgraphExec;
import jcuda.driver.CUstreamCaptureMode;

/**
 * Decode steps captured as CUDA graphs, one per (rows bucket, block-table width), and replayed:
 * a decode step of a small model is a few hundred short kernels, and launching each from Java
 * costs more than running it. A graph bakes in every pointer and size, so it is valid only while
 * the step's buffers stay where they were: {@code allocations} counts reallocations, and a
 * change drops every graph (buffers only grow, so this settles after the first large steps).
 */
public final class DecodeGraphs implements AutoCloseable {

    public record Key(int rows, int tableStride) {
    }

    private record Captured(CUgraph graph, CUgraphExec exec) {
    }

    private final Map<Key, Captured> graphs = new HashMap<>();
    private long allocations = -1;
    private long captures;
    private long drops;

    /** Buckets of rows a captured step pads its decode batch to. */
    public static int bucket(int decodes) {
        int bucket = 1;
        while (bucket < decodes) {
            bucket *= 2;
        }
        return bucket;
    }

    /** Block-table widths captured steps use: powers of two from 16 entries. */
    public static int tableStride(int blocksNeeded) {
        int stride = 16;
        while (stride < blocksNeeded) {
            stride *= 2;
        }
        return stride;
    }

    /** Replays the graph of {@code key}; false when there is none valid for {@code allocationsNow}. */
    public boolean replay(Key key, long allocationsNow, CudaStream stream) {
        if (allocationsNow != allocations) {
            if (!graphs.isEmpty()) {
                drops++;
            }
            clear();
            allocations = allocationsNow;
            return false;
        }
        Captured captured = graphs.get(key);
        if (captured == null) {
            return false;
        }
        Cuda.check(cuGraphLaunch(captured.exec(), stream.handle()), "cuGraphLaunch");
        return true;
    }

    /**
     * Records {@code step}'s launches on {@code stream} (nothing runs) as the graph of {@code key}.
     * The step must allocate nothing and wait for nothing.
     */
    public void capture(Key key, CudaStream stream, Runnable step) {
        CUgraph graph = new CUgraph();
        Cuda.check(cuStreamBeginCapture(stream.handle(), CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL),
                "cuStreamBeginCapture");
        try {
            step.run();
        } finally {
            Cuda.check(cuStreamEndCapture(stream.handle(), graph), "cuStreamEndCapture");
        }
        CUgraphExec exec = new CUgraphExec();
        Cuda.check(cuGraphInstantiate(exec, graph, 0), "cuGraphInstantiate");
        captures++;
        Captured previous = graphs.put(key, new Captured(graph, exec));
        if (previous != null) {
            destroy(previous);
        }
    }

    public int size() {
        return graphs.size();
    }

    /** Graphs captured so far. */
    public long captures() {
        return captures;
    }

    /** Times a reallocation dropped the graphs held. */
    public long drops() {
        return drops;
    }

    private void clear() {
        graphs.values().forEach(DecodeGraphs::destroy);
        graphs.clear();
    }

    private static void destroy(Captured captured) {
        cuGraphExecDestroy(captured.exec());
        cuGraphDestroy(captured.graph());
    }

    @Override
    public void close() {
        clear();
    }
}
