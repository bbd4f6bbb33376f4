package dev.edgevit.harness.core;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.text.SimpleDateFormat;
import java.util.ArrayList;
import java.util.Date;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TimeZone;

/** The results document of edgevit/bench/schema.json, and atomic file writes for it. */
public final class ResultJson {
  public static final int SCHEMA_VERSION = 2;
  public static final String HARNESS = "android";

  private ResultJson() {}

  /** ISO-8601 UTC to the second, in the form the host harness writes (2025-01-31T12:00:00+00:00). */
  public static String isoUtc(long epochMillis) {
    SimpleDateFormat format = new SimpleDateFormat("yyyy-MM-dd'T'HH:mm:ss'+00:00'", Locale.ROOT);
    format.setTimeZone(TimeZone.getTimeZone("UTC"));
    return format.format(new Date(epochMillis));
  }

  public static Map<String, Object> document(List<BenchResult> results, String created) {
    List<Object> items = new ArrayList<>();
    for (BenchResult r : results) {
      items.add(r.toJsonMap());
    }
    Map<String, Object> doc = new LinkedHashMap<>();
    // BEGIN schema fields (top-level required; tests/test_android_harness.py compares them)
    doc.put("schema_version", SCHEMA_VERSION);
    doc.put("harness", HARNESS);
    doc.put("created", created);
    doc.put("gemm_peak_gflop_per_s", null);  // no GEMM peak is measured on the phone
    doc.put("results", items);
    // END schema fields
    return doc;
  }

  public static String toJson(List<BenchResult> results, String created) {
    return Json.write(document(results, created), true) + "\n";
  }

  /**
   * Writes under a temporary name in the same folder, then renames: a reader (adb pulling while the app is
   * killed, or the app itself after a crash) never sees a half-written file.
   */
  public static void writeAtomic(File file, String text) throws IOException {
    File parent = file.getAbsoluteFile().getParentFile();
    if (parent != null && !parent.isDirectory() && !parent.mkdirs()) {
      throw new IOException("cannot create folder " + parent);
    }
    File tmp = new File(parent, "." + file.getName() + ".tmp");
    try (OutputStream out = new FileOutputStream(tmp)) {
      out.write(text.getBytes(StandardCharsets.UTF_8));
      out.flush();
    }
    if (!tmp.renameTo(file)) {
      if (!file.delete() || !tmp.renameTo(file)) {
        throw new IOException("cannot rename " + tmp + " to " + file);
      }
    }
  }
}
