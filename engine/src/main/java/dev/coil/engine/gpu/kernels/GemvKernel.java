package dev.coil.engine.gpu.kernels;

import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import dev.coil.engine.gpu.DeviceMatrix;
import dev.coil.engine.gpu.Kernel;
import dev.coil.engine.gpu.KernelModule;
import dev.coil.engine.load.DType;
import java.util.List;

/**
 * Launches the {@code gemv_*} kernels (gemv.cu): the linear layer for at most {@link #KERNEL_ROWS}
 * rows over bf16 weights (or {@link #MAX_PLAIN_ROWS} of an f32 or bf16 operand), out[r, n] =
 * Σ_k x[r, k] · w[n, k] with f32 accumulation, reading the weights once at full bandwidth. The operand x is f32 or bf16 rows, or is computed on the way in
 * from the kernel that would otherwise run before the product: silu(gate) · up, Mamba-2's gated
 * RMSNorm, or a block's residual update and the next block's pre-norm. Up to three products over
 * the same x (q, k, v) share a launch. x is rounded to bf16 as the separate kernels round it.
 * Three rows and more of a multiple of 32 wide take the tensor-core kernels of gemv_mma.cu (the same
 * operand and epilogues), the rest the CUDA-core ones.
 *
 * <p>Launched with programmatic stream serialization where the device allows it: each launch
 * loads its weights while the kernel before it finishes, then waits for its operand.
 *
 * <p>{@code -Dcoil.cuda.gemv=false} (read when a launcher is made) sends every product to cuBLAS.
 */
public final class GemvKernel {

    public static final String PROPERTY = "coil.cuda.gemv";

    /**
     * The most rows a product that makes its operand in the launch (a norm, silu(gate) · up) is sent
     * here with: decode batches of up to 4, 3 and 4 rows through the tensor-core kernels
     * (gemv_mma.cu) where the rows are a multiple of 32 wide. At 8 rows those launches, each block
     * making 8 rows' norms, were slower in a step than a norm kernel and cuBLAS (docs/performance.md);
     * an operand made before the launch goes further ({@link #MAX_PLAIN_ROWS}). Without the
     * tensor-core kernels ({@link #MMA_PROPERTY}) 2: from 4 rows the CUDA-core kernels are slower than
     * cuBLAS.
     */
    public static final int MAX_ROWS = 4;

    /** {@code -Dcoil.cuda.gemvMma=false}: no tensor-core kernels; 3 rows and more go to cuBLAS by default. */
    public static final String MMA_PROPERTY = "coil.cuda.gemvMma";

    /** The width the tensor-core kernels need a multiple of (a k32 block a lane group). */
    static final int MMA_COLS_MULTIPLE = 32;

    /** The most rows the kernels take (the buckets 1, 2, 4 and 8) with any operand. */
    public static final int KERNEL_ROWS = 8;

    /**
     * The most rows a product with an operand made before the launch (f32 or bf16 rows: a decode
     * step's products whose norm ran as a kernel of its own) is sent here with: 5 to 8 rows take the
     * 8-row tensor-core kernels, 9 to 16 rows up to {@link #SIXTEEN_ROWS_MAX_COLS} wide the 16-row
     * ones; the rest go to cuBLAS. {@code -Dcoil.cuda.gemvPlainRows=N} (at most 16) changes it, for
     * comparisons; 4 sends every step of more than 4 rows to cuBLAS.
     */
    public static final int MAX_PLAIN_ROWS = 16;

    /**
     * The widest rows 9 to 16 decode rows take the tensor-core kernels with
     * ({@code -Dcoil.cuda.gemv16MaxCols=N} changes it, for comparisons).
     */
    public static final int SIXTEEN_ROWS_MAX_COLS = Integer.getInteger("coil.cuda.gemv16MaxCols", 1024);

    /** {@code -Dcoil.cuda.gemvPlainRows=N}: see {@link #MAX_PLAIN_ROWS}. */
    public static final String PLAIN_ROWS_PROPERTY = "coil.cuda.gemvPlainRows";

    /** Dynamic shared memory a launch may use: x as bf16 (rows × cols). */
    static final int MAX_SHARED_BYTES = 96 * 1024;

    private static final int THREADS = 256;
    /** Output columns a block of the bucket computes: 8 warps of one column, or of two (or 16 on tensor cores). */
    private static int columnsPerBlock(int bucket) {
        return bucket == 0 || bucket == TWO_ROWS_NARROW || bucket == FOUR_ROWS_NARROW ? 8 : 16;
    }

    /** How x is made from the launch's inputs a and b. */
    public enum Operand {
        /** x = a, f32. */
        F32("f32"),
        /** x = a, bf16. */
        BF16("bf16"),
        /** x = silu(a) · b, f32 (the MLP's gate and up). */
        SILU_PRODUCT("silu"),
        /** x = weight · (a · silu(b)) / rms over each group (Mamba-2's gated norm, a = y, b = z), f32. */
        GATED_NORM("gated_norm"),
        /** v = a + b · multiplier (or a), x = weight · v / rms(v), v written to hOut (a block's residual and pre-norm). */
        RESIDUAL_NORM("residual_norm");

        private final String suffix;

        Operand(String suffix) {
            this.suffix = suffix;
        }
    }

    /** One product of a launch: out (rows, weights.rows()) f32 = x · weightsᵀ. */
    public record Product(DeviceMatrix weights, DeviceBuffer out) {
    }

    /** Mamba-2's gated norm as an operand: its weight (cols), group size and epsilon. */
    public record Norm(DeviceBuffer weight, int groupSize, float eps) {
    }

    /**
     * A block's pre-norm as an operand, after the previous block's residual update:
     * v = h + update · multiplier (update null: v = h), x = weight · v / rms(v); v is written to
     * hOut, which must not be h (null: not written). h, update, hOut: (rows, cols) f32.
     */
    public record ResidualNorm(DeviceBuffer h, DeviceBuffer update, float multiplier, DeviceBuffer hOut,
            DeviceBuffer weight, float eps) {
    }

    /**
     * Mamba-2's causal conv update as the end of the first product (a decode step's in_proj): its
     * output columns [firstColumn, firstColumn + channels) are the conv's channels of each row's new
     * token; convolved (rows, channels) gets silu(conv) of them and each row's state slot (slots:
     * (rows) int32) shifts by the new values, as {@link CausalConv1dUpdateKernel} does. weight:
     * (channels, kernelSize); bias: (channels) or null; states: (slots, kernelSize - 1, channels).
     * The states must not be written by the kernel launched just before (they are read early).
     */
    public record Conv(DeviceBuffer weight, DeviceBuffer bias, int kernelSize, DeviceBuffer states,
            DeviceBuffer slots, DeviceBuffer convolved, int firstColumn, int channels) {
    }

    /**
     * RoPE and the K/V cache write at the end of a one-row q/k/v launch ({@link #projectResidualNorm(
     * CudaStream, ResidualNorm, List, RopeWrite)}): q and k turned to positions[0] over their first
     * rotaryDim columns of each head (rope_kv_write's arithmetic), then k and v stored into cache row
     * destinations[0] of keyCache and valueCache: (rows, kvHeads, headDim), f32 or bf16.
     */
    public record RopeWrite(DeviceBuffer positions, DeviceBuffer destinations, DeviceBuffer keyCache,
            DeviceBuffer valueCache, DType cacheType, int headDim, int rotaryDim, float theta) {
    }

    /**
     * The MLP's stacked gate and up projection ending in silu(gate) · up: gateAndUp is [2·I, cols]
     * (gate rows, then up rows), hidden (rows, I) bf16 gets bf16(silu(gate) · up), the operand
     * {@link #projectSiluProduct} would make of the two halves' f32 outputs, bit for bit.
     */
    public record SiluPair(DeviceMatrix gateAndUp, DeviceBuffer hidden) {

        int width() {
            return gateAndUp.rows() / 2;
        }
    }

    /**
     * The kernels' suffixes by bucket: 1 row, 1 row two columns a warp, 2, 4 and 8 rows, 2 and 4 rows
     * one column a warp (products of fewer columns than WIDE_FROM_COLUMNS, as for one row: a lane holds
     * twice the chunks of a column, so rows up to 2048 wide are loaded in one pass before the wait), and
     * up to 4, up to 8 and up to 16 rows on tensor cores (gemv_mma.cu; 16 for f32 and bf16 operands only).
     */
    static final String[] BUCKETS = {"rows1", "rows1_wide", "rows2", "rows4", "rows8", "rows2_narrow",
            "rows4_narrow", "mma4", "mma8", "mma16"};
    private static final int TWO_ROWS_NARROW = 5;
    private static final int FOUR_ROWS_NARROW = 6;
    private static final int MMA_FOUR = 7;
    private static final int MMA_EIGHT = 8;
    /** 9 to 16 rows on tensor cores: compiled for the f32 and bf16 operands only. */
    private static final int MMA_SIXTEEN = 9;
    /**
     * The buckets whose kernels have a lean twin (suffix _lean, 80 registers: three blocks a
     * multiprocessor), taken by rows up to LEAN_MAX_COLS wide with the overlap switch: the tall ones of
     * 1, 2 and 4 rows, so that their 210-256 blocks fit the GPU at once with room beside the launch
     * before (the default kernels of two and four rows hold one block a multiprocessor).
     */
    private static final boolean[] LEAN_TWIN = {false, true, true, true, false, false, false, false, false, false};

    /** Output columns from which one row takes the two-columns-a-warp kernel (more than 256 blocks of 8). */
    private static final long WIDE_FROM_COLUMNS = 2049;

    private final Kernel[][] kernels = new Kernel[Operand.values().length][BUCKETS.length];
    private final int multiprocessors;
    /** The lean twins by operand and bucket; null where a bucket has none, or without the overlap switch. */
    private final Kernel[][] leanKernels = new Kernel[Operand.values().length][BUCKETS.length];
    /**
     * The widest rows a lean twin takes: its weights in one pass, all loaded before its wait
     * (COIL_GEMV_HELD_LEAN / 2 chunks of 8 a lane, 32 lanes), its normed values in registers.
     */
    private static final int LEAN_MAX_COLS = 768;
    private final boolean enabled;
    private final int maxRows;
    /** The most rows of an f32 or bf16 operand ({@link #MAX_PLAIN_ROWS}); at least maxRows. */
    private final int maxPlainRows;
    /** Whether 3 rows or more take the tensor-core kernels where they can ({@link #MMA_PROPERTY}). */
    private final boolean mma;
    /** Whether 3 rows or more of widths the tensor-core kernels do not take are taken (by the CUDA-core ones). */
    private final boolean anyWidth;

    /** {@code -Dcoil.cuda.gemvRows=N} (1 to {@link #KERNEL_ROWS}) changes {@link #MAX_ROWS}, for comparisons. */
    public static final String ROWS_PROPERTY = "coil.cuda.gemvRows";

    /** Takes products of up to {@link #MAX_ROWS} rows (or -Dcoil.cuda.gemvRows; 2 without the tensor-core kernels). */
    public GemvKernel(KernelModule module) {
        this(module, true);
    }

    /**
     * As above, or, with {@code enabled} false, no product at all ({@link #supports} false
     * throughout): for {@code --batch-invariant}, whose products all go through {@link
     * InvariantGemmKernel}, since these kernels sum a row in an order that depends on the rows.
     */
    public GemvKernel(KernelModule module, boolean enabled) {
        this(module, Integer.getInteger(ROWS_PROPERTY, mmaOn() ? MAX_ROWS : 2),
                System.getProperty(ROWS_PROPERTY) != null, enabled);
    }

    /**
     * Takes products of up to {@code maxRows} rows (at most {@link #KERNEL_ROWS}) of any width: 3 rows
     * or more not fit for the tensor-core kernels take the CUDA-core ones.
     */
    public GemvKernel(KernelModule module, int maxRows) {
        this(module, maxRows, true, true);
    }

    private static boolean mmaOn() {
        return !"false".equalsIgnoreCase(System.getProperty(MMA_PROPERTY, "true"));
    }

    private GemvKernel(KernelModule module, int maxRows, boolean anyWidth, boolean enabled) {
        if (maxRows < 1 || maxRows > KERNEL_ROWS) {
            throw new IllegalArgumentException("maxRows must be in [1, " + KERNEL_ROWS + "], not " + maxRows);
        }
        this.maxRows = maxRows;
        this.anyWidth = anyWidth;
        this.enabled = enabled && !"false".equalsIgnoreCase(System.getProperty(PROPERTY, "true"));
        this.mma = mmaOn();
        int plainRows = Integer.getInteger(PLAIN_ROWS_PROPERTY, MAX_PLAIN_ROWS);
        if (plainRows > MAX_PLAIN_ROWS) {
            throw new IllegalArgumentException(PLAIN_ROWS_PROPERTY + " must be at most " + MAX_PLAIN_ROWS + ", not "
                    + plainRows);
        }
        this.maxPlainRows = Math.max(maxRows, plainRows);
        this.multiprocessors = module.multiprocessors();
        for (Operand operand : Operand.values()) {
            for (int bucket = 0; bucket < BUCKETS.length; bucket++) {
                if (bucket == MMA_SIXTEEN && !isPlain(operand)) {
                    continue;
                }
                String name = "gemv_" + operand.suffix + "_" + BUCKETS[bucket];
                kernels[operand.ordinal()][bucket] = kernel(module, name);
                leanKernels[operand.ordinal()][bucket] = LEAN_TWIN[bucket] && KernelModule.gemvOverlap()
                        ? kernel(module, name + "_lean") : null;
            }
        }
    }

    private static Kernel kernel(KernelModule module, String name) {
        Kernel kernel = module.kernel(name);
        kernel.allowDynamicSharedBytes(MAX_SHARED_BYTES);
        kernel.waitsForPreviousKernel();
        return kernel;
    }

    /**
     * True when this launcher takes {@code rows} rows times w: bf16 weights with a multiple of 8
     * columns, 1 to maxRows rows whose operand fits in shared memory, and not switched off.
     */
    public boolean supports(int rows, DeviceMatrix w) {
        return takes(rows, w) && rows <= maxRows && (rows <= 2 || anyWidth || takesMma(rows, w.cols()));
    }

    /** Not switched off, bf16 weights with a multiple of 8 columns, and at least one row whose operand fits. */
    private boolean takes(int rows, DeviceMatrix w) {
        return enabled && rows >= 1 && w.dtype() == DType.BF16 && w.cols() % 8 == 0
                && sharedBytes(rows, w.cols()) <= MAX_SHARED_BYTES;
    }

    /**
     * True when this launcher takes {@code rows} rows times w with an operand made before the launch
     * (f32 or bf16 rows, {@link #project}, {@link #projectSiluPair}): as {@link #supports(int,
     * DeviceMatrix)}, or more rows, up to {@link #MAX_PLAIN_ROWS}, on the tensor cores.
     */
    public boolean supportsPlain(int rows, DeviceMatrix w) {
        return supports(rows, w) || (takes(rows, w) && rows > maxRows && rows <= maxPlainRows
                && takesMma(rows, w.cols()) && (rows <= KERNEL_ROWS || w.cols() <= SIXTEEN_ROWS_MAX_COLS));
    }

    private static boolean isPlain(Operand operand) {
        return operand == Operand.F32 || operand == Operand.BF16;
    }

    /** Whether {@code rows} rows of {@code cols} wide take the tensor-core kernels. */
    private boolean takesMma(int rows, int cols) {
        return mma && rows > 2 && cols % MMA_COLS_MULTIPLE == 0;
    }

    /** As {@link #supports(int, DeviceMatrix)}, with x made by the gated norm {@code norm}. */
    public boolean supports(int rows, DeviceMatrix w, Norm norm) {
        return supports(rows, w) && norm.groupSize() > 0 && w.cols() % norm.groupSize() == 0;
    }

    /** The widest row whose norm a launch keeps in its threads' registers (COIL_GEMV_CACHED · 256 values). */
    public static final int REGISTER_NORM_MAX_COLS = 8 * THREADS;

    /** {@code -Dcoil.cuda.fuseWideNorms=true}: every norm the kernels take is made inside the product, for comparisons. */
    public static final String FUSE_WIDE_NORMS_PROPERTY = "coil.cuda.fuseWideNorms";

    /**
     * Whether a step should make Mamba-2's gated norm (groups of {@code groupSize} over rows
     * {@code cols} wide) inside out_proj's launch rather than in a launch of its own: when it is one
     * group. Every block of the launch makes the operand again, and each group costs a block a trip to
     * memory and a block-wide sum: with Nemotron-3-Nano's 8 groups of 512 out_proj [2688, 4096] took
     * 20.5 µs on an H200 against 7.6 with a ready operand, and the gated norm's own launch 3.9 µs
     * (docs/performance.md); one group of 3072 (granite-4.0-h-tiny) is cheaper inside.
     */
    public static boolean fusesGatedNorm(int cols, int groupSize) {
        return Boolean.getBoolean(FUSE_WIDE_NORMS_PROPERTY) || groupSize == cols;
    }

    /**
     * Whether a step should make a block's residual update and pre-norm (rows {@code cols} wide) inside
     * the launch of {@code rows} rows of the block's first products ({@code weights}, one launch; with
     * {@code pair}, a stacked gate and up ending in silu(gate) · up) rather than in a launch of its own: when the threads hold the row in registers, or when the
     * launch's blocks fit the GPU about at once (three a multiprocessor). A wider row costs each block
     * trips to memory, paid again by each wave of a tall product's blocks: Nemotron-3-Nano's in_proj
     * [10304, 2688] (644 blocks) took 25 µs with the norm inside against 14.8 after a norm launch of
     * 6.5-9 µs, while its q/k/v (288 blocks, RoPE at their end) were faster with it inside.
     */
    public boolean fusesResidualNorm(int rows, int cols, List<DeviceMatrix> weights, boolean pair) {
        if (Boolean.getBoolean(FUSE_WIDE_NORMS_PROPERTY) || cols <= REGISTER_NORM_MAX_COLS) {
            return true;
        }
        return shape(rows, cols, weights, pair).blocks() <= 3L * multiprocessors;
    }

    /** A launch's bucket of kernels and its count of blocks. */
    private record LaunchShape(int bucket, long blocks) {
    }

    /**
     * The shape of a launch of {@code rows} rows over products of {@code weights} ({@code cols} wide; with
     * {@code pair}, the one stacked gate and up that ends in silu(gate) · up, whose warps hold two columns:
     * one row takes the wide entry whatever its size, a block 8 outputs).
     */
    private LaunchShape shape(int rows, int cols, List<DeviceMatrix> weights, boolean pair) {
        long columns = 0;
        for (DeviceMatrix w : weights) {
            columns += w.rows();
        }
        int bucket = bucket(rows, columns >= WIDE_FROM_COLUMNS || pair, takesMma(rows, cols));
        long blocks = 0;
        for (DeviceMatrix w : weights) {
            blocks += pair ? Math.ceilDiv(w.rows() / 2, THREADS / 32) : Math.ceilDiv(w.rows(), columnsPerBlock(bucket));
        }
        return new LaunchShape(bucket, blocks);
    }

    /** out = x · wᵀ for each product; x: (rows, cols) in {@code type} (F32 or BF16), rows {@code stride} elements apart. */
    public void project(CudaStream stream, DeviceBuffer x, DType type, int stride, int rows, List<Product> products) {
        project(stream, x, type, stride, rows, products, null);
    }

    /** As above, the first product ending in {@code conv} (null: none). */
    public void project(CudaStream stream, DeviceBuffer x, DType type, int stride, int rows, List<Product> products,
            Conv conv) {
        launch(stream, plainOperand(x, type, stride, rows, products.getFirst().weights().cols()), x, stride, null, 0,
                null, 0f, null, conv, null, rows, products);
    }

    /** hidden = bf16(silu(gate) · up) of the product of x with the stacked gate and up ({@link SiluPair}). */
    public void projectSiluPair(CudaStream stream, DeviceBuffer x, DType type, int stride, int rows, SiluPair pair) {
        launch(stream, plainOperand(x, type, stride, rows, pair.gateAndUp().cols()), x, stride, null, 0, null, 0f,
                null, null, pair, rows, pairProduct(rows, pair));
    }

    /** The operand kind that reads x as it is, x checked to hold rows of cols {@code type} values {@code stride} apart. */
    private static Operand plainOperand(DeviceBuffer x, DType type, int stride, int rows, int cols) {
        Operand operand = switch (type) {
            case F32 -> Operand.F32;
            case BF16 -> Operand.BF16;
            case F16 -> throw new IllegalArgumentException("a gemv operand is F32 or BF16, not F16");
        };
        long spanned = RowKernels.spanned(rows, cols, stride);
        if (type == DType.F32) {
            x.requireFloats(spanned, "x");
        } else {
            x.requireBytes(2 * spanned, "x");
        }
        return operand;
    }

    /** As {@link #projectSiluPair(CudaStream, DeviceBuffer, DType, int, int, SiluPair)}, x made by the residual update and pre-norm. */
    public void projectResidualNorm(CudaStream stream, ResidualNorm norm, int rows, SiluPair pair) {
        residualNorm(stream, norm, rows, pairProduct(rows, pair), null, pair, null);
    }

    /** The pair's one product; its out is the bf16 hidden, checked here for its bf16 size. */
    private static List<Product> pairProduct(int rows, SiluPair pair) {
        if (pair.gateAndUp().rows() % 2 != 0) {
            throw new IllegalArgumentException("stacked gate and up need an even number of rows, not "
                    + pair.gateAndUp().rows());
        }
        pair.hidden().requireBytes(2L * rows * pair.width(), "hidden");
        return List.of(new Product(pair.gateAndUp(), pair.hidden()));
    }

    /** out = (silu(gate) · up) · wᵀ; gate and up: (rows, w.cols) f32 rows of their strides. */
    public void projectSiluProduct(CudaStream stream, DeviceBuffer gate, int gateStride, DeviceBuffer up,
            int upStride, int rows, Product product) {
        int cols = product.weights().cols();
        gate.requireFloats(RowKernels.spanned(rows, cols, gateStride), "gate");
        up.requireFloats(RowKernels.spanned(rows, cols, upStride), "up");
        launch(stream, Operand.SILU_PRODUCT, gate, gateStride, up, upStride, null, 0f, null, null, null, rows,
                List.of(product));
    }

    /**
     * out = gatedRmsNorm(y, z) · wᵀ; y and z: (rows, w.cols) f32 rows of their strides. z null: y
     * holds y · silu(z) already (as {@link SsmStateUpdateKernel} gives it with a gate).
     */
    public void projectGatedNorm(CudaStream stream, DeviceBuffer y, int yStride, DeviceBuffer z, int zStride,
            Norm norm, int rows, Product product) {
        int cols = product.weights().cols();
        y.requireFloats(RowKernels.spanned(rows, cols, yStride), "y");
        if (z != null) {
            z.requireFloats(RowKernels.spanned(rows, cols, zStride), "z");
        }
        norm.weight().requireFloats(cols, "norm weight");
        if (!supports(rows, product.weights(), norm)) {
            throw new IllegalArgumentException("gemv does not take a gated norm in groups of " + norm.groupSize()
                    + " over " + cols + " columns");
        }
        launch(stream, Operand.GATED_NORM, y, yStride, z, zStride, norm, 0f, null, null, null, rows,
                List.of(product));
    }

    /** out = rmsNorm(h + update · multiplier) · wᵀ for each product, writing the updated h to hOut (see {@link ResidualNorm}). */
    public void projectResidualNorm(CudaStream stream, ResidualNorm norm, int rows, List<Product> products) {
        projectResidualNorm(stream, norm, rows, products, null);
    }

    /** As above, the first product ending in {@code conv} (null: none). */
    public void projectResidualNorm(CudaStream stream, ResidualNorm norm, int rows, List<Product> products,
            Conv conv) {
        residualNorm(stream, norm, rows, products, conv, null, null);
    }

    /**
     * True when one row's q, k and v (products of those widths over rows {@code cols} wide) can end in
     * {@link RopeWrite}: each takes this launcher and the one-column kernel, heads of a multiple of 8
     * columns, an even rotaryDim within them.
     */
    public boolean takesRopeWrite(DeviceMatrix query, DeviceMatrix key, DeviceMatrix value, int headDim,
            int rotaryDim) {
        long columns = (long) query.rows() + key.rows() + value.rows();
        return supports(1, query) && supports(1, key) && supports(1, value) && query.cols() == key.cols()
                && key.cols() == value.cols() && columns < WIDE_FROM_COLUMNS && headDim % 8 == 0
                && query.rows() % headDim == 0 && key.rows() % headDim == 0 && value.rows() == key.rows()
                && rotaryDim >= 0 && rotaryDim <= headDim && rotaryDim % 2 == 0;
    }

    /**
     * One row's q, k and v (products in that order) over the residual update and pre-norm, ending in
     * RoPE and the K/V cache write {@code rope}: only where {@link #takesRopeWrite}.
     */
    public void projectResidualNorm(CudaStream stream, ResidualNorm norm, List<Product> products, RopeWrite rope) {
        if (products.size() != 3 || !takesRopeWrite(products.get(0).weights(), products.get(1).weights(),
                products.get(2).weights(), rope.headDim(), rope.rotaryDim())) {
            throw new IllegalArgumentException("RoPE and the cache write end a one-row launch of q, k and v");
        }
        long width = products.get(1).weights().rows();
        rope.positions().requireBytes(4, "positions");
        rope.destinations().requireBytes(4, "destinations");
        int bytes = rope.cacheType() == DType.BF16 ? 2 : 4;
        rope.keyCache().requireBytes(bytes * width, "key cache");
        rope.valueCache().requireBytes(bytes * width, "value cache");
        residualNorm(stream, norm, 1, products, null, null, rope);
    }

    private void residualNorm(CudaStream stream, ResidualNorm norm, int rows, List<Product> products, Conv conv,
            SiluPair pair, RopeWrite rope) {
        int cols = products.getFirst().weights().cols();
        long elements = (long) rows * cols;
        norm.h().requireFloats(elements, "h");
        if (norm.update() != null) {
            norm.update().requireFloats(elements, "update");
        }
        if (norm.hOut() != null) {
            norm.hOut().requireFloats(elements, "hOut");
            if (norm.hOut().address() == norm.h().address()) {
                throw new IllegalArgumentException("hOut must not be h: the launch's other blocks still read h");
            }
        }
        norm.weight().requireFloats(cols, "norm weight");
        launch(stream, Operand.RESIDUAL_NORM, norm.h(), cols, norm.update(), cols,
                new Norm(norm.weight(), cols, norm.eps()), norm.multiplier(), norm.hOut(), conv, pair, rows, products, rope);
    }

    private void launch(CudaStream stream, Operand operand, DeviceBuffer a, int aStride, DeviceBuffer b,
            int bStride, Norm norm, float multiplier, DeviceBuffer hOut, Conv conv, SiluPair pair, int rows,
            List<Product> products) {
        launch(stream, operand, a, aStride, b, bStride, norm, multiplier, hOut, conv, pair, rows, products, null);
    }

    private void launch(CudaStream stream, Operand operand, DeviceBuffer a, int aStride, DeviceBuffer b,
            int bStride, Norm norm, float multiplier, DeviceBuffer hOut, Conv conv, SiluPair pair, int rows,
            List<Product> products, RopeWrite rope) {
        if (products.isEmpty() || products.size() > 3) {
            throw new IllegalArgumentException("a gemv launch takes 1 to 3 products, not " + products.size());
        }
        int cols = products.getFirst().weights().cols();
        if (isPlain(operand) ? !supportsPlain(rows, products.getFirst().weights())
                : !supports(rows, products.getFirst().weights())) {
            throw new IllegalArgumentException("gemv does not take " + rows + " rows × " + products.getFirst().weights()
                    .dtype() + " [" + products.getFirst().weights().rows() + ", " + cols + "]"
                    + (enabled ? "" : " (switched off: --batch-invariant or -D" + PROPERTY + "=false)"));
        }
        RowKernels.requireStride(aStride, cols, "x stride");
        if (pair != null && (products.size() != 1 || conv != null)) {
            throw new IllegalArgumentException("silu(gate) · up ends a launch of one product and no conv");
        }
        LaunchShape shape = shape(rows, cols, products.stream().map(Product::weights).toList(), pair != null);
        int bucket = shape.bucket();
        Object[] segments = new Object[9];
        for (int s = 0; s < 3; s++) {
            Product product = s < products.size() ? products.get(s) : null;
            if (product != null) {
                if (product.weights().cols() != cols || product.weights().dtype() != DType.BF16) {
                    throw new IllegalArgumentException("the products of one gemv launch share bf16 weights of " + cols
                            + " columns");
                }
                if (pair == null) {
                    product.out().requireFloats((long) rows * product.weights().rows(), "out");
                }
            }
            segments[3 * s] = product == null ? null : product.weights().data();
            segments[3 * s + 1] = product == null ? null : product.out();
            segments[3 * s + 2] = product == null ? 0 : product.weights().rows();
        }
        if (conv != null) {
            requireConv(conv, rows, products.getFirst().weights().rows());
        }
        Object[] arguments = new Object[28 + segments.length];
        int at = 20 + segments.length;
        arguments[at] = rope == null ? null : rope.positions();
        arguments[at + 1] = rope == null ? null : rope.destinations();
        arguments[at + 2] = rope == null ? null : rope.keyCache();
        arguments[at + 3] = rope == null ? null : rope.valueCache();
        arguments[at + 4] = rope != null && rope.cacheType() == DType.BF16 ? 1 : 0;
        arguments[at + 5] = rope == null ? 1 : rope.headDim();
        arguments[at + 6] = rope == null ? 0 : rope.rotaryDim();
        arguments[at + 7] = rope == null ? 0f : rope.theta();
        arguments[0] = a;
        arguments[1] = aStride;
        arguments[2] = b;
        arguments[3] = bStride;
        arguments[4] = norm == null ? null : norm.weight();
        arguments[5] = norm == null ? cols : norm.groupSize();
        arguments[6] = norm == null ? 0f : norm.eps();
        arguments[7] = multiplier;
        arguments[8] = hOut;
        arguments[9] = conv == null ? null : conv.weight();
        arguments[10] = conv == null ? null : conv.bias();
        arguments[11] = conv == null ? null : conv.states();
        arguments[12] = conv == null ? null : conv.slots();
        arguments[13] = conv == null ? null : conv.convolved();
        arguments[14] = conv == null ? 1 : conv.kernelSize();
        arguments[15] = conv == null ? 0 : conv.firstColumn();
        arguments[16] = conv == null ? 0 : conv.channels();
        arguments[17] = pair == null ? 0 : pair.width();
        arguments[18] = rows;
        arguments[19] = cols;
        System.arraycopy(segments, 0, arguments, 20, segments.length);
        Kernel lean = leanKernels[operand.ordinal()][bucket];
        Kernel kernel = lean != null && cols <= LEAN_MAX_COLS ? lean : kernels[operand.ordinal()][bucket];
        kernel.launch(stream, (int) shape.blocks(), 1, 1, THREADS, sharedBytes(rows, cols),
                arguments);
    }

    private static void requireConv(Conv conv, int rows, int columns) {
        if (conv.kernelSize() < 1 || conv.channels() < 1 || conv.firstColumn() < 0
                || conv.firstColumn() + conv.channels() > columns) {
            throw new IllegalArgumentException("conv channels [" + conv.firstColumn() + ", "
                    + (conv.firstColumn() + conv.channels()) + ") of kernel " + conv.kernelSize()
                    + " do not lie within the product's " + columns + " columns");
        }
        conv.weight().requireFloats((long) conv.channels() * conv.kernelSize(), "conv weight");
        if (conv.bias() != null) {
            conv.bias().requireFloats(conv.channels(), "conv bias");
        }
        conv.slots().requireFloats(rows, "slots");
        conv.convolved().requireFloats((long) rows * conv.channels(), "convolved");
    }

    /**
     * The bucket of a launch of {@code rows} rows: tall when its products have WIDE_FROM_COLUMNS columns
     * or more together, or end in silu(gate) · up; mma when it takes the tensor-core kernels.
     */
    static int bucket(int rows, boolean tall, boolean mma) {
        if (mma) {
            return rows <= 4 ? MMA_FOUR : rows <= 8 ? MMA_EIGHT : MMA_SIXTEEN;
        }
        if (rows > 4) {
            return 4;
        }
        if (rows > 2) {
            return tall ? 3 : FOUR_ROWS_NARROW;
        }
        if (rows == 2) {
            return tall ? 2 : TWO_ROWS_NARROW;
        }
        return tall ? 1 : 0;
    }

    private static int sharedBytes(int rows, int cols) {
        return (int) Math.min(Integer.MAX_VALUE, 2L * rows * cols);
    }
}
