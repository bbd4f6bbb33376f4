package dev.edgevit.harness;

import android.app.Activity;
import android.app.Instrumentation;
import android.os.Bundle;
import android.util.Log;
import dev.edgevit.harness.core.BenchResult;
import dev.edgevit.harness.core.BenchSession;
import dev.edgevit.harness.core.Config;
import java.io.PrintWriter;
import java.io.StringWriter;

/**
 * The entry `edgevit bench --device android` uses: `adb shell am instrument -w -r -e iterations 50 ...
 * dev.edgevit.harness/dev.edgevit.harness.BenchInstrumentation` blocks until the run ends, so the driver
 * needs no polling, and the result keys below tell it what happened:
 * edgevit_status (ok | failed), results (path on the phone), summary, error.
 */
public final class BenchInstrumentation extends Instrumentation {
  private Bundle arguments;

  @Override
  public void onCreate(Bundle arguments) {
    super.onCreate(arguments);
    this.arguments = arguments;
    start(); // onStart() runs on a new thread
  }

  @Override
  public void onStart() {
    super.onStart();
    Bundle out = new Bundle();
    try {
      Config config = AndroidBench.config(getTargetContext(), arguments);
      BenchSession.Summary summary = AndroidBench.run(getTargetContext(), config, line -> {
        Log.i(AndroidBench.TAG, line);
        Bundle status = new Bundle();
        status.putString("progress", line);
        sendStatus(1, status);
      });
      int ok = 0;
      for (BenchResult r : summary.results) {
        ok += BenchResult.STATUS_OK.equals(r.status) ? 1 : 0;
      }
      out.putString("edgevit_status", summary.results.isEmpty() ? "failed" : "ok");
      out.putString("results", summary.resultsFile.getAbsolutePath());
      out.putString("summary", ok + " of " + summary.results.size() + " artifacts ok; "
          + summary.deviceOutputs.size() + " device-outputs files");
      if (!summary.problems.isEmpty()) {
        out.putString("error", String.join(" | ", summary.problems));
      }
      finish(Activity.RESULT_OK, out);
    } catch (Throwable t) {
      StringWriter trace = new StringWriter();
      t.printStackTrace(new PrintWriter(trace));
      Log.e(AndroidBench.TAG, "benchmark failed", t);
      out.putString("edgevit_status", "failed");
      out.putString("error", t.toString().replace('\n', ' '));
      out.putString("trace", trace.toString());
      finish(Activity.RESULT_CANCELED, out);
    }
  }
}
