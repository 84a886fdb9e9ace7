package dev.coil.engine.gpu;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import org.junit.jupiter.api.Tag;

/**
 * Marks a test class that needs a CUDA GPU. The normal build excludes the tag (CI has no GPU);
 * scripts/gpu-check.sh runs exactly these on the GPU machine. Without a device they fail, through
 * {@link GpuFixture}, rather than skip: a GPU run that tested nothing must not look green.
 */
@Target({ElementType.TYPE, ElementType.METHOD})
@Retention(RetentionPolicy.RUNTIME)
@Tag("gpu")
public @interface GpuTest {}
