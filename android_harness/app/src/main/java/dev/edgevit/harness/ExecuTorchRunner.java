package dev.edgevit.harness;

import dev.edgevit.harness.core.ArtifactInfo;
import dev.edgevit.harness.core.Runner;
import dev.edgevit.harness.core.RunnerException;
import org.pytorch.executorch.EValue;
import org.pytorch.executorch.Module;
import org.pytorch.executorch.Tensor;

/**
 * The core's {@link Runner} on ExecuTorch's Android Module API: Module.load + loadMethod("forward") is the
 * load ExecuTorch's benchmark app times; forward(EValue) is one iteration.
 */
final class ExecuTorchRunner implements Runner {
  private final String path;
  private Module module;
  private EValue input;
  private long[] outputShape = new long[0];

  ExecuTorchRunner(ArtifactInfo info) {
    this.path = info.artifact.getAbsolutePath();
  }

  @Override
  public long loadNanos() throws RunnerException {
    long start = System.nanoTime();
    try {
      module = Module.load(path);
      // Older AARs return the error code; newer ones throw ExecutorchRuntimeException instead.
      int status = module.loadMethod("forward");
      if (status != 0) {
        throw new RunnerException(status, "loadMethod(\"forward\") failed");
      }
    } catch (RuntimeException e) {
      throw new RunnerException(errorCode(e), String.valueOf(e.getMessage()), e);
    }
    return System.nanoTime() - start;
  }

  /** ExecutorchRuntimeException.getErrorCode() where the AAR has it (looked up so any AAR version links). */
  static int errorCode(Throwable e) {
    try {
      Object code = e.getClass().getMethod("getErrorCode").invoke(e);
      return code instanceof Integer ? (Integer) code : -1;
    } catch (ReflectiveOperationException | RuntimeException ignored) {
      return -1;
    }
  }

  @Override
  public void setInput(float[] data, long[] shape) throws RunnerException {
    try {
      input = EValue.from(Tensor.fromBlob(data, shape));
    } catch (RuntimeException e) {
      throw new RunnerException(-1, "cannot make the input tensor: " + e.getMessage(), e);
    }
  }

  @Override
  public float[] run() throws RunnerException {
    try {
      EValue[] outputs = module.forward(input);
      if (outputs == null || outputs.length == 0) {
        throw new RunnerException(-1, "forward returned no outputs (was the module destroyed?)");
      }
      Tensor out = outputs[0].toTensor();
      outputShape = out.shape();
      return out.getDataAsFloatArray();
    } catch (RuntimeException e) {
      throw new RunnerException(errorCode(e), String.valueOf(e.getMessage()), e);
    }
  }

  @Override
  public long[] outputShape() {
    return outputShape;
  }

  @Override
  public void close() {
    if (module != null) {
      module.destroy();
      module = null;
    }
  }
}
