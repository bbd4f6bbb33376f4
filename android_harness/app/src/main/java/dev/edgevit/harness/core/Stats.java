package dev.edgevit.harness.core;

import java.util.Arrays;

/**
 * Latency statistics exactly as edgevit/bench/stats.py defines them, so Android numbers compare with host and
 * iOS numbers: median (mean of the middle two for even counts), p90 by linear interpolation between closest
 * ranks (numpy's default), and a trimmed mean that drops floor(n * trimFraction) samples from each end.
 *
 * <p>The arithmetic follows the Python code operation by operation (same order of additions and divisions),
 * and tests/test_android_harness.py checks both agree on the same samples.
 */
public final class Stats {
  public static final double DEFAULT_TRIM_FRACTION = 0.1;

  private Stats() {}

  private static double[] sorted(double[] samples) {
    double[] s = Arrays.copyOf(samples, samples.length);
    Arrays.sort(s);
    return s;
  }

  /** Middle value; mean of the two middle values for an even count; null for no samples. */
  public static Double median(double[] samples) {
    if (samples.length == 0) {
      return null;
    }
    double[] s = sorted(samples);
    int n = s.length;
    int mid = n / 2;
    return n % 2 == 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2.0;
  }

  /** q-th percentile (0-100) by linear interpolation between closest ranks; null for no samples. */
  public static Double percentile(double[] samples, double q) {
    if (samples.length == 0) {
      return null;
    }
    if (!(q >= 0.0 && q <= 100.0)) {
      throw new IllegalArgumentException("percentile q must be in [0, 100], got " + q);
    }
    double[] s = sorted(samples);
    double pos = (s.length - 1) * q / 100.0;
    int lo = (int) Math.floor(pos);
    int hi = Math.min(lo + 1, s.length - 1);
    return s[lo] + (s[hi] - s[lo]) * (pos - lo);
  }

  /** Mean after dropping floor(n * trimFraction) samples from each end; null for no samples. */
  public static Double trimmedMean(double[] samples, double trimFraction) {
    if (samples.length == 0) {
      return null;
    }
    checkTrimFraction(trimFraction);
    double[] s = sorted(samples);
    int k = (int) Math.floor(s.length * trimFraction);
    double sum = 0.0;
    for (int i = k; i < s.length - k; i++) {
      sum += s[i];
    }
    return sum / (s.length - 2 * k);
  }

  /** Plain mean (ExecuTorch's benchmark app reports it as avg_inference_latency); null for no samples. */
  public static Double mean(double[] samples) {
    if (samples.length == 0) {
      return null;
    }
    double sum = 0.0;
    for (double v : samples) {
      sum += v;
    }
    return sum / samples.length;
  }

  /** Rejects a trim fraction stats.py would reject, with the same wording. */
  public static void checkTrimFraction(double trimFraction) {
    if (!(trimFraction >= 0.0 && trimFraction < 0.5)) {
      throw new IllegalArgumentException("trim_fraction must be in [0, 0.5), got " + trimFraction);
    }
  }
}
