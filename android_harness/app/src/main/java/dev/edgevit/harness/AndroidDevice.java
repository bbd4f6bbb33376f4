package dev.edgevit.harness;

import android.os.Build;
import android.os.Debug;
import dev.edgevit.harness.core.DeviceInfo;
import dev.edgevit.harness.core.MemoryProbe;
import java.util.LinkedHashMap;
import java.util.Map;

/** The phone as the results schema describes it, and its PSS probe. */
final class AndroidDevice {
  private AndroidDevice() {}

  static DeviceInfo info() {
    String name = Build.MANUFACTURER + " " + Build.MODEL;
    String os = "Android " + Build.VERSION.RELEASE + " (API " + Build.VERSION.SDK_INT + ", build "
        + Build.DISPLAY + ")";
    String soc = Build.HARDWARE;
    if (Build.VERSION.SDK_INT >= 31) {
      soc = Build.SOC_MANUFACTURER + " " + Build.SOC_MODEL;
    }
    String abi = Build.SUPPORTED_ABIS.length > 0 ? Build.SUPPORTED_ABIS[0] : "unknown ABI";
    String cpu = soc + " (" + abi + ", " + Runtime.getRuntime().availableProcessors() + " cores)";
    return new DeviceInfo("android", name, os, cpu);
  }

  static Map<String, String> toolVersions() {
    Map<String, String> versions = new LinkedHashMap<>();
    versions.put("executorch-android", BuildConfig.EXECUTORCH_VERSION);
    versions.put("edgevit-android-harness", BuildConfig.VERSION_NAME);
    versions.put("android", Build.VERSION.RELEASE);
    versions.put("android-api", String.valueOf(Build.VERSION.SDK_INT));
    return versions;
  }

  /** Debug.getPss(): the process's proportional set size in KiB, the memory ExecuTorch's app reports. */
  static final MemoryProbe PSS =
      new MemoryProbe() {
        @Override
        public long kib() {
          return Debug.getPss();
        }

        @Override
        public String kind() {
          return "pss";
        }
      };
}
