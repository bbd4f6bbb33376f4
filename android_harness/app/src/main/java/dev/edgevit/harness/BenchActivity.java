package dev.edgevit.harness;

import android.app.Activity;
import android.os.Bundle;
import android.os.Handler;
import android.os.Looper;
import android.util.Log;
import android.widget.ScrollView;
import android.widget.TextView;
import dev.edgevit.harness.core.BenchSession;
import dev.edgevit.harness.core.Config;

/**
 * For running by hand: tap the launcher icon (config from files/edgevit-config.json, else defaults) or
 * `adb shell am start -n dev.edgevit.harness/.BenchActivity --es model_dir ... --ei iterations 50`.
 * Shows progress on screen; results land where the instrumentation puts them.
 */
public final class BenchActivity extends Activity {
  private TextView text;
  private final Handler main = new Handler(Looper.getMainLooper());

  @Override
  protected void onCreate(Bundle savedInstanceState) {
    super.onCreate(savedInstanceState);
    text = new TextView(this);
    text.setPadding(32, 32, 32, 32);
    text.setTextIsSelectable(true);
    ScrollView scroll = new ScrollView(this);
    scroll.addView(text);
    setContentView(scroll);
    final Bundle extras = getIntent() == null ? null : getIntent().getExtras();
    Thread worker = new Thread(() -> runBenchmark(extras), "edgevit-bench");
    worker.start();
  }

  private void show(String line) {
    Log.i(AndroidBench.TAG, line);
    main.post(() -> text.append(line + "\n"));
  }

  private void runBenchmark(Bundle extras) {
    try {
      Config config = AndroidBench.config(getApplicationContext(), extras);
      show("edgevit benchmark: " + config);
      BenchSession.Summary summary = AndroidBench.run(getApplicationContext(), config, this::show);
      for (String problem : summary.problems) {
        show("problem: " + problem);
      }
      show("results: " + summary.resultsFile);
      show("done");
    } catch (Throwable t) {
      Log.e(AndroidBench.TAG, "benchmark failed", t);
      show("failed: " + t);
    }
  }
}
