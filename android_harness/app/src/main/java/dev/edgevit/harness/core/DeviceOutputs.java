package dev.edgevit.harness.core;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code X.device-outputs.json} (format edgevit-device-outputs/1): the artifact's outputs on the phone for
 * each validation input, which `edgevit validate X.pte --device-outputs FILE` compares with the original
 * model. Values are written exactly (see {@link Json}); an "error" key appears only when a run failed.
 */
public final class DeviceOutputs {
  public static final String FORMAT = "edgevit-device-outputs/1";

  private final String artifact;
  private final String artifactSha256;
  private final DeviceInfo device;
  private final List<Object> outputs = new ArrayList<>();
  private String error;

  public DeviceOutputs(String artifact, String artifactSha256, DeviceInfo device) {
    this.artifact = artifact;
    this.artifactSha256 = artifactSha256;
    this.device = device;
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

  public int size() {
    return outputs.size();
  }

  public Map<String, Object> toJsonMap() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("format", FORMAT);
    m.put("artifact", artifact);
    m.put("artifact_sha256", artifactSha256);
    m.put("device", device.toJsonMap());
    m.put("outputs", outputs);
    if (error != null) {
      m.put("error", error);
    }
    return m;
  }

  public String toJson() {
    return Json.write(toJsonMap(), true) + "\n";
  }
}
