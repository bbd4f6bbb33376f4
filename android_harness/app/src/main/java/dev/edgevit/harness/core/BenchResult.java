package dev.edgevit.harness.core;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One result of edgevit/bench/schema.json ($defs.result). A number that was not measured stays null, never
 * filled in; {@link #toJsonMap()} emits exactly the schema's required fields, in the schema's order.
 */
public final class BenchResult {
  public static final String STATUS_OK = "ok";
  public static final String STATUS_FAILED = "failed";
  public static final String STATUS_NOT_RUN = "not_run";

  public String model;
  public String form = "executorch";
  public String artifact;
  public String artifactSha256;
  public String runtime = "executorch";
  public String backend;
  public String computeUnit;
  public String precision = "fp32";
  public DeviceInfo device;
  public long batch = 1;
  public long[] inputShape = new long[0];
  public int warmup;
  public double[] perIterationMs = new double[0];
  public double trimFraction = Stats.DEFAULT_TRIM_FRACTION;
  public Double peakMemoryMb;
  public String memoryKind;
  public Double loadTimeMs;
  public Map<String, String> toolVersions = new LinkedHashMap<>();
  public String status = STATUS_OK;
  public String error;
  /**
   * Schema v2. The ExecuTorch Module API does not expose its thread pool, so threads stays null (not set by
   * this harness); FLOPs and the achieved rate are not counted on the phone.
   */
  public Integer threads;
  public Double gflop;

  /** The schema's iterations: how many timed samples there are. */
  public int iterations() {
    return perIterationMs.length;
  }

  public Double medianMs() {
    return Stats.median(perIterationMs);
  }

  public Double trimmedMeanMs() {
    return Stats.trimmedMean(perIterationMs, trimFraction);
  }

  public Double p90Ms() {
    return Stats.percentile(perIterationMs, 90.0);
  }

  /** Achieved GFLOP/s at the median, or null without both (schema v2 gflop_per_s). */
  public Double gflopPerS() {
    Double median = medianMs();
    return gflop == null || median == null || median <= 0 ? null : gflop / (median / 1e3);
  }

  /** Marks the result failed (or not run) with the reason a user can act on. */
  public BenchResult fail(String status, String error) {
    this.status = status;
    this.error = error;
    return this;
  }

  public Map<String, Object> toJsonMap() {
    Map<String, Object> m = new LinkedHashMap<>();
    // BEGIN schema fields ($defs.result.required; tests/test_android_harness.py compares them)
    m.put("model", model);
    m.put("form", form);
    m.put("artifact", artifact);
    m.put("artifact_sha256", artifactSha256);
    m.put("runtime", runtime);
    m.put("backend", backend);
    m.put("compute_unit", computeUnit);
    m.put("precision", precision);
    m.put("device", device == null ? null : device.toJsonMap());
    m.put("batch", batch);
    m.put("input_shape", inputShape);
    m.put("warmup", warmup);
    m.put("iterations", iterations());
    m.put("per_iteration_ms", perIterationMs);
    m.put("median_ms", medianMs());
    m.put("trimmed_mean_ms", trimmedMeanMs());
    m.put("trim_fraction", trimFraction);
    m.put("p90_ms", p90Ms());
    m.put("peak_memory_mb", peakMemoryMb);
    m.put("memory_kind", peakMemoryMb == null ? null : memoryKind);
    m.put("load_time_ms", loadTimeMs);
    m.put("tool_versions", new LinkedHashMap<>(toolVersions));
    m.put("status", status);
    m.put("error", error);
    m.put("threads", threads);
    m.put("gflop", gflop);
    m.put("gflop_per_s", gflopPerS());
    m.put("percent_of_peak", null);
    m.put("interleaved", null); // host-only: a .pte timed alternately with its .onnx
    // END schema fields
    return m;
  }
}
