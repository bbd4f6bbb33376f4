package dev.edgevit.harness.core;

import java.io.File;
import java.util.Map;

/**
 * What the harness needs from an artifact's manifest ({@code X.json} beside {@code X.pte}): model name,
 * backend, precision and input shape. A missing or unreadable manifest is kept as {@link #problem}, and the
 * artifact is reported as failed with that reason rather than benchmarked under guessed labels.
 */
public final class ArtifactInfo {
  public final File artifact;
  public final String stem;
  public String model;
  public String backend;
  public String precision = "fp32";
  public long[] inputShape;
  public String manifestSha256;
  public String problem;

  private ArtifactInfo(File artifact) {
    this.artifact = artifact;
    String name = artifact.getName();
    this.stem = name.endsWith(".pte") ? name.substring(0, name.length() - 4) : name;
  }

  public File manifestFile() {
    return new File(artifact.getParentFile(), stem + ".json");
  }

  /** The validation-input bundle folder ({@code X.validation/}); it may be absent. */
  public File bundleDir() {
    return new File(artifact.getParentFile(), stem + ".validation");
  }

  public String deviceOutputsName() {
    return stem + ".device-outputs.json";
  }

  /** Reads the manifest; never throws (problems land in {@link #problem}). */
  public static ArtifactInfo read(File artifact) {
    ArtifactInfo info = new ArtifactInfo(artifact);
    // Labels from the file name (<model>.executorch.<backend>.<precision>.pte) until the manifest says better.
    String[] parts = info.stem.split("\\.");
    info.model = parts[0];
    info.precision = info.stem.contains(".fp16") ? "fp16" : "fp32";
    for (int i = 0; i + 1 < parts.length; i++) {
      if (parts[i].equals("executorch") && !parts[i + 1].startsWith("fp")) {
        info.backend = parts[i + 1];
      }
    }
    File manifest = info.manifestFile();
    if (!manifest.isFile()) {
      info.problem = "no manifest " + manifest.getName() + " beside " + artifact.getName()
          + " (push the .json that `edgevit convert` wrote next to the .pte)";
      return info;
    }
    try {
      Object parsed = Json.parse(Files2.readText(manifest));
      if (!(parsed instanceof Map)) {
        throw new IllegalArgumentException("not a JSON object");
      }
      Map<?, ?> m = (Map<?, ?>) parsed;
      if (m.get("model") instanceof String) {
        info.model = (String) m.get("model");
      }
      if (m.containsKey("backend")) {
        info.backend = m.get("backend") instanceof String ? (String) m.get("backend") : null;
      }
      if (m.get("precision") instanceof String) {
        info.precision = (String) m.get("precision");
      }
      if (m.get("sha256") instanceof String) {
        info.manifestSha256 = (String) m.get("sha256");
      }
      if (m.get("input") instanceof Map) {
        info.inputShape = Json.asLongArray(((Map<?, ?>) m.get("input")).get("shape"));
      }
      if (info.inputShape == null || info.inputShape.length == 0) {
        info.problem = "manifest " + manifest.getName() + " has no input.shape";
      } else if (!info.precision.equals("fp32") && !info.precision.equals("fp16")) {
        info.problem = "manifest precision '" + info.precision + "' is not one the results schema knows (fp32, fp16)";
        info.precision = "fp32";
      }
    } catch (Exception e) {
      info.problem = "cannot read manifest " + manifest.getName() + ": " + e.getMessage();
    }
    return info;
  }
}
