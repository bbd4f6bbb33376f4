package dev.edgevit.harness.core;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Off-device entry point so tests (tests/test_android_harness.py) drive the same code the app runs.
 *
 * <p>Test-only: it lives in the unit-test source set (src/test), so the app never ships it or its
 * {@link SyntheticRunner}; the Python tests compile it with javac together with src/main's core/.
 *
 * <pre>
 * java -cp CLASSES dev.edgevit.harness.core.StatsCli stats [--trim F] [--warmup N] &lt; samples
 *     samples (ms, whitespace-separated) -&gt; a results document with one result, on stdout
 * java -cp CLASSES dev.edgevit.harness.core.StatsCli session --model_dir D --out_dir O [--iterations N]
 *     [--warmup N] [--trim_fraction F] [--results NAME]
 *     benchmarks every .pte in D with a pure-Java runner (output = 2 * input; a file starting with
 *     FAIL_LOAD fails to load) and writes the results and device-outputs JSON exactly as the app does
 * </pre>
 */
public final class StatsCli {
  private StatsCli() {}

  public static void main(String[] args) throws IOException {
    if (args.length == 0) {
      usage("missing mode");
    }
    Map<String, String> options = options(Arrays.copyOfRange(args, 1, args.length));
    if (args[0].equals("stats")) {
      System.out.print(statsDocument(readSamples(System.in), options));
    } else if (args[0].equals("session")) {
      System.exit(session(options) ? 0 : 1);
    } else {
      usage("unknown mode " + args[0]);
    }
  }

  private static void usage(String why) {
    System.err.println("StatsCli: " + why + "\nusage: StatsCli stats [--trim F] [--warmup N] < samples\n"
        + "       StatsCli session --model_dir D --out_dir O [--iterations N] [--warmup N] [--trim_fraction F]");
    System.exit(2);
  }

  private static Map<String, String> options(String[] args) {
    Map<String, String> out = new LinkedHashMap<>();
    for (int i = 0; i < args.length; i += 2) {
      if (!args[i].startsWith("--") || i + 1 >= args.length) {
        usage("expected --key value, got " + args[i]);
      }
      out.put(args[i].substring(2), args[i + 1]);
    }
    return out;
  }

  static double[] readSamples(InputStream in) throws IOException {
    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    byte[] chunk = new byte[8192];
    int n;
    while ((n = in.read(chunk)) > 0) {
      buf.write(chunk, 0, n);
    }
    String text = new String(buf.toByteArray(), StandardCharsets.UTF_8).trim();
    if (text.isEmpty()) {
      return new double[0];
    }
    String[] tokens = text.split("\\s+");
    double[] samples = new double[tokens.length];
    for (int i = 0; i < tokens.length; i++) {
      samples[i] = Double.parseDouble(tokens[i]);
    }
    return samples;
  }

  static DeviceInfo thisMachine() {
    return new DeviceInfo("android", "StatsCli on " + System.getProperty("os.name"),
        System.getProperty("os.name") + " " + System.getProperty("os.version"), System.getProperty("os.arch"));
  }

  static String statsDocument(double[] samples, Map<String, String> options) {
    BenchResult r = new BenchResult();
    r.model = "statscli";
    r.artifact = "statscli.pte";
    r.backend = "xnnpack";
    r.device = thisMachine();
    r.inputShape = new long[] {1, 3, 224, 224};
    r.warmup = Integer.parseInt(options.getOrDefault("warmup", "0"));
    r.trimFraction = Double.parseDouble(options.getOrDefault("trim", String.valueOf(Stats.DEFAULT_TRIM_FRACTION)));
    Stats.checkTrimFraction(r.trimFraction);
    r.perIterationMs = samples;
    r.toolVersions.put("java", System.getProperty("java.version"));
    if (samples.length == 0) {
      r.fail(BenchResult.STATUS_NOT_RUN, "no samples");
    }
    List<BenchResult> results = new ArrayList<>();
    results.add(r);
    return ResultJson.toJson(results, ResultJson.isoUtc(System.currentTimeMillis()));
  }

  private static boolean session(Map<String, String> options) throws IOException {
    if (!options.containsKey("model_dir") || !options.containsKey("out_dir")) {
      usage("session needs --model_dir and --out_dir");
    }
    Config config = new Config(null).apply(options);
    Map<String, String> versions = new LinkedHashMap<>();
    versions.put("java", System.getProperty("java.version"));
    versions.put("runner", "synthetic");
    BenchSession session = new BenchSession(config, thisMachine(), versions, SyntheticRunner::new,
        BenchLoop.systemClock(MemoryProbe.NONE), line -> System.err.println(line), System::currentTimeMillis);
    BenchSession.Summary summary = session.run();
    for (String problem : summary.problems) {
      System.err.println("problem: " + problem);
    }
    System.out.println(summary.resultsFile);
    return summary.allOk();
  }
}
