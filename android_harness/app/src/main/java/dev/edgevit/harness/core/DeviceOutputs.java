package dev.edgevit.harness.core;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code X.device-outputs.json} (format edgevit-device-outputs/2, the same as the iOS harness writes; see
 * docs/device-outputs.md): the artifact's outputs on the phone for each validation input, which
 * `edgevit validate X.pte --device-outputs FILE` compares with the original model. Every key is always
 * written; values exactly (see {@link Json}), non-finite ones as null; "error" is non-null when a validation
 * input failed and the outputs are incomplete.
 */
public final class DeviceOutputs {
  public static final String FORMAT = "edgevit-device-outputs/2";
  public static final String HARNESS = "android";

  private final String artifact;
  private final String artifactSha256;
  private final DeviceInfo device;
  private final String created;
  private final List<Object> outputs = new ArrayList<>();
  private final List<String> warnings = new ArrayList<>();
  private String error;

  /** {@code created}: ISO-8601 UTC as {@link ResultJson#isoUtc} writes it. */
  public DeviceOutputs(String artifact, String artifactSha256, DeviceInfo device, String created) {
    this.artifact = artifact;
    this.artifactSha256 = artifactSha256;
    this.device = device;
    this.created = created;
  }

  public void add(String name, long[] shape, float[] values) {
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("name", name);
    out.put("shape", shape);
    out.put("values", values);
    outputs.add(out);
  }

  public void setError(String error) {
    this.error = error;
  }

  /** Something the comparison should know about these outputs. */
  public void addWarning(String warning) {
    warnings.add(warning);
  }

  public int size() {
    return outputs.size();
  }

  public Map<String, Object> toJsonMap() {
    Map<String, Object> m = new LinkedHashMap<>();
    // BEGIN device-outputs fields (docs/device-outputs.md; tests/test_android_harness.py compares them)
    m.put("format", FORMAT);
    m.put("harness", HARNESS);
    m.put("created", created);
    m.put("artifact", artifact);
    m.put("artifact_sha256", artifactSha256);
    m.put("device", device.toJsonMap());
    m.put("compute_unit", null); // CoreML's setting; ExecuTorch's backend is fixed in the .pte
    m.put("outputs", outputs);
    m.put("warnings", warnings);
    m.put("error", error);
    // END device-outputs fields
    return m;
  }

  public String toJson() {
    return Json.write(toJsonMap(), true) + "\n";
  }
}
