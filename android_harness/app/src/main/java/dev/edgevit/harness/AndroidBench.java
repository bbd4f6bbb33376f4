package dev.edgevit.harness;

import android.content.Context;
import android.os.Bundle;
import android.os.PowerManager;
import android.system.Os;
import android.util.Log;
import dev.edgevit.harness.core.BenchLoop;
import dev.edgevit.harness.core.BenchSession;
import dev.edgevit.harness.core.Config;
import dev.edgevit.harness.core.Files2;
import dev.edgevit.harness.core.Json;
import java.io.File;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What the Activity and the Instrumentation share: build the config (files/edgevit-config.json, then extras
 * on top), run the session on ExecuTorch, hold a partial wake lock so the phone does not sleep mid-run.
 */
final class AndroidBench {
  static final String TAG = "edgevit";
  static final String CONFIG_FILE = "edgevit-config.json";

  private AndroidBench() {}

  /** Output goes to the app's private files dir; `adb exec-out run-as dev.edgevit.harness cat ...` reads it. */
  static Config config(Context context, Bundle extras) {
    Config config = new Config(new File(context.getFilesDir(), "edgevit"));
    File file = new File(context.getFilesDir(), CONFIG_FILE);
    if (file.isFile()) {
      try {
        Object parsed = Json.parse(Files2.readText(file));
        if (parsed instanceof Map) {
          Map<String, Object> values = new LinkedHashMap<>();
          for (Map.Entry<?, ?> e : ((Map<?, ?>) parsed).entrySet()) {
            values.put(String.valueOf(e.getKey()), e.getValue());
          }
          config.apply(values);
        }
      } catch (Exception e) {
        throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
      }
    }
    if (extras != null) {
      Map<String, Object> values = new LinkedHashMap<>();
      for (String key : extras.keySet()) {
        values.put(key, extras.get(key));
      }
      config.apply(values);
    }
    return config;
  }

  static BenchSession.Summary run(Context context, Config config, BenchSession.Listener listener)
      throws Exception {
    try {
      // Lets a QNN-delegated .pte find the DSP libraries, as ExecuTorch's benchmark app does.
      Os.setenv("ADSP_LIBRARY_PATH", context.getApplicationInfo().nativeLibraryDir, true);
    } catch (Exception e) {
      Log.w(TAG, "cannot set ADSP_LIBRARY_PATH: " + e);
    }
    Log.i(TAG, "config: " + config);
    PowerManager power = (PowerManager) context.getSystemService(Context.POWER_SERVICE);
    PowerManager.WakeLock lock = power.newWakeLock(PowerManager.PARTIAL_WAKE_LOCK, "edgevit:bench");
    lock.acquire(6 * 60 * 60 * 1000L);
    try {
      BenchSession session = new BenchSession(config, AndroidDevice.info(), AndroidDevice.toolVersions(),
          ExecuTorchRunner::new, BenchLoop.systemClock(AndroidDevice.PSS), listener,
          System::currentTimeMillis);
      return session.run();
    } finally {
      lock.release();
    }
  }
}
