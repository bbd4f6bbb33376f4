package dev.edgevit.harness.core;

/**
 * One loaded program, as the benchmark loop sees it. The Android app implements it on ExecuTorch's
 * {@code org.pytorch.executorch.Module}; tests implement it in pure Java, so the loop, the statistics and the
 * JSON are exercised off-device.
 */
public interface Runner extends AutoCloseable {
  /**
   * Loads the program and its forward method.
   *
   * @return the wall time the load took, in nanoseconds
   * @throws RunnerException with the runtime's error code when the program cannot be loaded
   */
  long loadNanos() throws RunnerException;

  /** Sets the input of the next {@link #run()} calls; kept out of the timed region because it copies. */
  void setInput(float[] data, long[] shape) throws RunnerException;

  /** One forward pass on the current input; returns the first output, flattened. */
  float[] run() throws RunnerException;

  /** The shape of the output of the last {@link #run()}. */
  long[] outputShape();

  /** Frees the program; never throws. */
  @Override
  void close();
}
