package dev.edgevit.harness.core;

import java.util.LinkedHashMap;
import java.util.Map;

/** The schema's device object: where the numbers were measured. */
public final class DeviceInfo {
  public final String kind;
  public final String name;
  public final String os;
  public final String cpu;

  public DeviceInfo(String kind, String name, String os, String cpu) {
    this.kind = kind;
    this.name = name;
    this.os = os;
    this.cpu = cpu;
  }

  public Map<String, Object> toJsonMap() {
    Map<String, Object> m = new LinkedHashMap<>();
    // BEGIN schema fields ($defs.device.required; tests/test_android_harness.py compares them)
    m.put("kind", kind);
    m.put("name", name);
    m.put("os", os);
    m.put("cpu", cpu);
    // END schema fields
    return m;
  }
}
