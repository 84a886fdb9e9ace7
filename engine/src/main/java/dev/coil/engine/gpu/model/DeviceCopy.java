package dev.coil.engine.gpu.model;

import static jcuda.driver.JCudaDriver.cuMemcpy2DAsync;

import dev.coil.engine.gpu.CudaException;
import dev.coil.engine.gpu.CudaStream;
import dev.coil.engine.gpu.DeviceBuffer;
import jcuda.driver.CUDA_MEMCPY2D;
import jcuda.driver.CUmemorytype;
import jcuda.driver.CUresult;

/**
 * Strided f32 copies between device buffers, queued on a stream: a column range of a wider row
 * (z or dt out of in_proj's output) made dense, or rows of one width placed in rows of another
 * (head vectors padded to the head dim the attention kernels compile).
 */
final class DeviceCopy {

    private DeviceCopy() {
    }

    /**
     * For each of {@code rows} rows: {@code width} floats from source row r (rows of sourceStride
     * floats, starting at column sourceColumn) to destination row r (rows of destinationStride, from
     * column destinationColumn).
     */
    static void rows(CudaStream stream, DeviceBuffer source, int sourceStride, int sourceColumn,
            DeviceBuffer destination, int destinationStride, int destinationColumn, int rows, int width) {
        if (rows == 0 || width == 0) {
            return;
        }
        source.requireFloats((long) (rows - 1) * sourceStride + sourceColumn + width, "copy source");
        destination.requireFloats((long) (rows - 1) * destinationStride + destinationColumn + width,
                "copy destination");
        CUDA_MEMCPY2D copy = new CUDA_MEMCPY2D();
        copy.srcMemoryType = CUmemorytype.CU_MEMORYTYPE_DEVICE;
        copy.srcDevice = source.pointer();
        copy.srcXInBytes = 4L * sourceColumn;
        copy.srcPitch = 4L * sourceStride;
        copy.dstMemoryType = CUmemorytype.CU_MEMORYTYPE_DEVICE;
        copy.dstDevice = destination.pointer();
        copy.dstXInBytes = 4L * destinationColumn;
        copy.dstPitch = 4L * destinationStride;
        copy.WidthInBytes = 4L * width;
        copy.Height = rows;
        int result = cuMemcpy2DAsync(copy, stream.handle());
        if (result != CUresult.CUDA_SUCCESS) {
            throw new CudaException("cuMemcpy2DAsync of " + rows + " rows of " + width + " floats failed: "
                    + CUresult.stringFor(result), result, null);
        }
    }
}
