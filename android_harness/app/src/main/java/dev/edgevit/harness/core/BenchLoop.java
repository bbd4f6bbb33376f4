package dev.edgevit.harness.core;

import java.util.function.LongSupplier;

/**
 * The measurement of one artifact, as ExecuTorch's Android benchmark app does it: load (timed), warm-up
 * iterations (untimed), timed iterations, and PSS growth over the idle process. Memory is read only between
 * phases because reading it is slow; the clock is injectable so the loop is testable off-device.
 */
public final class BenchLoop {
  private final LongSupplier clock;
  private final MemoryProbe memory;

  public BenchLoop(LongSupplier clock, MemoryProbe memory) {
    this.clock = clock;
    this.memory = memory;
  }

  /** A loop on System.nanoTime (monotonic, what the ExecuTorch benchmark app uses). */
  public static BenchLoop systemClock(MemoryProbe memory) {
    return new BenchLoop(System::nanoTime, memory);
  }

  /**
   * Loads {@code runner}, runs {@code warmup} untimed and {@code iterations} timed passes on {@code input},
   * and fills the timing, load and memory fields of {@code result}. A failure marks the result failed with
   * what happened; samples measured before it are kept. Returns whether the program loaded and ran.
   */
  public boolean measure(Runner runner, float[] input, long[] shape, int warmup, int iterations,
                         BenchResult result) {
    long idle = memory.kib();
    long peak = Long.MIN_VALUE;
    result.warmup = warmup;
    result.memoryKind = memory.kind();
    try {
      result.loadTimeMs = runner.loadNanos() / 1e6;
    } catch (RunnerException e) {
      result.fail(BenchResult.STATUS_FAILED,
          "load failed: load_status " + e.code() + " = " + ExecuTorchErrors.describe(e.code())
              + ": " + e.getMessage() + ExecuTorchErrors.hint(e.code()));
      return false;
    }
    peak = Math.max(peak, memory.kib());
    double[] samples = new double[iterations];
    int done = 0;
    String phase = "setting the input";
    try {
      runner.setInput(input, shape);
      phase = "warm-up";
      for (int i = 0; i < warmup; i++) {
        runner.run();
      }
      peak = Math.max(peak, memory.kib());
      phase = "timed iterations";
      for (; done < iterations; done++) {
        long start = clock.getAsLong();
        runner.run();
        samples[done] = (clock.getAsLong() - start) / 1e6;
      }
      peak = Math.max(peak, memory.kib());
      return true;
    } catch (RunnerException e) {
      String code = e.code() >= 0 ? " (" + ExecuTorchErrors.describe(e.code()) + ")" : "";
      result.fail(BenchResult.STATUS_FAILED, "forward failed during " + phase + code + ": " + e.getMessage());
      return false;
    } finally {
      double[] kept = new double[done];
      System.arraycopy(samples, 0, kept, 0, done);
      result.perIterationMs = kept;
      if (idle >= 0 && peak >= 0) {
        result.peakMemoryMb = Math.max(0, peak - idle) / 1024.0;
      }
    }
  }
}
