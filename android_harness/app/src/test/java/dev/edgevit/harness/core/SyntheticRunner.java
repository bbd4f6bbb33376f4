package dev.edgevit.harness.core;

import java.io.IOException;
import java.nio.charset.StandardCharsets;

/**
 * A pure-Java runner for the off-device tests: output = 2 * input (exact in float32), so they can check the
 * whole data path; an artifact whose bytes start with FAIL_LOAD fails to load. Test-only (src/test).
 */
final class SyntheticRunner implements Runner {
  private final ArtifactInfo info;
  private float[] input = new float[0];
  private long[] shape = new long[0];

  SyntheticRunner(ArtifactInfo info) {
    this.info = info;
  }

  @Override
  public long loadNanos() throws RunnerException {
    long start = System.nanoTime();
    byte[] head;
    try {
      head = Files2.readBytes(info.artifact);
    } catch (IOException e) {
      throw new RunnerException(0x22, e.getMessage(), e);
    }
    if (new String(head, StandardCharsets.US_ASCII).startsWith("FAIL_LOAD")) {
      throw new RunnerException(0x14, "synthetic load failure");
    }
    return System.nanoTime() - start;
  }

  @Override
  public void setInput(float[] data, long[] shape) {
    this.input = data;
    this.shape = shape;
  }

  @Override
  public float[] run() {
    float[] out = new float[input.length];
    for (int i = 0; i < out.length; i++) {
      out[i] = input[i] * 2f;
    }
    return out;
  }

  @Override
  public long[] outputShape() {
    return shape;
  }

  @Override
  public void close() {}
}
