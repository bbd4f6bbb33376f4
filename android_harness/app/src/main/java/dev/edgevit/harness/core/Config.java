package dev.edgevit.harness.core;

import java.io.File;
import java.util.Map;

/**
 * What to benchmark and how, from intent/instrumentation extras or a config JSON. Keys: model_dir, out_dir,
 * iterations, warmup, trim_fraction, results. ExecuTorch benchmark-app names are accepted too (num_iter,
 * num_warm_up_iter), so its usual adb command lines keep working.
 */
public final class Config {
  public static final String DEFAULT_MODEL_DIR = "/data/local/tmp/edgevit";

  public File modelDir = new File(DEFAULT_MODEL_DIR);
  public File outDir;
  public int iterations = 50;
  public int warmup = 10;
  public double trimFraction = Stats.DEFAULT_TRIM_FRACTION;
  public String resultsName = "results.json";

  public Config(File defaultOutDir) {
    this.outDir = defaultOutDir;
  }

  public File resultsFile() {
    return new File(outDir, resultsName);
  }

  /** Overrides the fields named in {@code values} (strings or numbers); throws with the bad key's name. */
  public Config apply(Map<String, ?> values) {
    for (Map.Entry<String, ?> e : values.entrySet()) {
      if (e.getValue() == null) {
        continue;
      }
      String v = String.valueOf(e.getValue()).trim();
      switch (e.getKey()) {
        case "model_dir":
          modelDir = new File(v);
          break;
        case "out_dir":
          outDir = new File(v);
          break;
        case "iterations":
        case "num_iter":
          iterations = parseInt(e.getKey(), v, 1);
          break;
        case "warmup":
        case "num_warm_up_iter":
          warmup = parseInt(e.getKey(), v, 0);
          break;
        case "trim_fraction":
          try {
            trimFraction = Double.parseDouble(v);
          } catch (NumberFormatException ex) {
            throw new IllegalArgumentException("trim_fraction must be a number, got '" + v + "'");
          }
          Stats.checkTrimFraction(trimFraction);
          break;
        case "results":
          if (v.isEmpty() || v.contains("/")) {
            throw new IllegalArgumentException("results must be a file name without '/', got '" + v + "'");
          }
          resultsName = v;
          break;
        default:
          break; // unknown keys (e.g. Android's own instrumentation arguments) are not ours
      }
    }
    return this;
  }

  private static int parseInt(String key, String v, int min) {
    double d;
    try {
      d = Double.parseDouble(v); // JSON configs may say 50.0
    } catch (NumberFormatException ex) {
      throw new IllegalArgumentException(key + " must be an integer, got '" + v + "'");
    }
    if (d != Math.rint(d) || d < min || d > Integer.MAX_VALUE) {
      throw new IllegalArgumentException(key + " must be an integer >= " + min + ", got '" + v + "'");
    }
    return (int) d;
  }

  @Override
  public String toString() {
    return "model_dir=" + modelDir + " out_dir=" + outDir + " iterations=" + iterations + " warmup=" + warmup
        + " trim_fraction=" + trimFraction + " results=" + resultsName;
  }
}
