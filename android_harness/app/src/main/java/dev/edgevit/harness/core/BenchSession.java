package dev.edgevit.harness.core;

import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Benchmarks every {@code .pte} in a folder, one after another, and writes the results JSON (rewritten after
 * each artifact, so a crash keeps what was measured) and, for artifacts with a validation bundle, the
 * device-outputs JSON. Android-free: the app supplies a runner factory on ExecuTorch's Module, tests a
 * pure-Java one.
 */
public final class BenchSession {
  /** Opens (without loading) a runner for one artifact. */
  public interface RunnerFactory {
    Runner open(ArtifactInfo info) throws Exception;
  }

  /** Progress lines for logcat, the screen, or the instrumentation status. */
  public interface Listener {
    void onProgress(String line);
  }

  /** What a session did, for the caller to report. */
  public static final class Summary {
    public final File resultsFile;
    public final List<BenchResult> results;
    public final List<File> deviceOutputs;
    public final List<String> problems;

    Summary(File resultsFile, List<BenchResult> results, List<File> deviceOutputs, List<String> problems) {
      this.resultsFile = resultsFile;
      this.results = results;
      this.deviceOutputs = deviceOutputs;
      this.problems = problems;
    }

    public boolean allOk() {
      if (results.isEmpty() || !problems.isEmpty()) {
        return false;
      }
      for (BenchResult r : results) {
        if (!BenchResult.STATUS_OK.equals(r.status)) {
          return false;
        }
      }
      return true;
    }
  }

  /** Backends whose .pte cannot run on Android at all: recorded as not run, not as a failure. */
  private static final List<String> APPLE_ONLY_BACKENDS = Arrays.asList("coreml", "mps");

  private final Config config;
  private final DeviceInfo device;
  private final Map<String, String> toolVersions;
  private final RunnerFactory factory;
  private final BenchLoop loop;
  private final Listener listener;
  private final LongClock wallClock;

  /** Wall-clock milliseconds for the "created" stamp; injectable for tests. */
  public interface LongClock {
    long millis();
  }

  public BenchSession(Config config, DeviceInfo device, Map<String, String> toolVersions, RunnerFactory factory,
                      BenchLoop loop, Listener listener, LongClock wallClock) {
    this.config = config;
    this.device = device;
    this.toolVersions = toolVersions;
    this.factory = factory;
    this.loop = loop;
    this.listener = listener;
    this.wallClock = wallClock;
  }

  /** The artifacts in the model folder, sorted by name so runs are reproducible. */
  public static List<File> artifacts(File modelDir) {
    File[] files = modelDir.listFiles((dir, name) -> name.endsWith(".pte"));
    List<File> list = new ArrayList<>(files == null ? new ArrayList<>() : Arrays.asList(files));
    list.sort((a, b) -> a.getName().compareTo(b.getName()));
    return list;
  }

  public Summary run() throws IOException {
    List<BenchResult> results = new ArrayList<>();
    List<File> outputs = new ArrayList<>();
    List<String> problems = new ArrayList<>();
    File resultsFile = config.resultsFile();
    if (!config.outDir.isDirectory() && !config.outDir.mkdirs()) {
      throw new IOException("cannot create output folder " + config.outDir);
    }
    List<File> artifacts = artifacts(config.modelDir);
    if (artifacts.isEmpty()) {
      String why = config.modelDir.isDirectory()
          ? "no .pte files in " + config.modelDir
          : config.modelDir + " does not exist or the app cannot read it";
      problems.add(why + " (push them with: adb push X.pte X.json X.validation " + Config.DEFAULT_MODEL_DIR + "/)");
    }
    writeResults(resultsFile, results);
    for (int i = 0; i < artifacts.size(); i++) {
      File pte = artifacts.get(i);
      listener.onProgress("[" + (i + 1) + "/" + artifacts.size() + "] " + pte.getName());
      File out = benchOne(ArtifactInfo.read(pte), results, problems);
      if (out != null) {
        outputs.add(out);
      }
      writeResults(resultsFile, results);
      BenchResult r = results.get(results.size() - 1);
      listener.onProgress("  " + r.status + summaryOf(r));
    }
    return new Summary(resultsFile, results, outputs, problems);
  }

  private static String summaryOf(BenchResult r) {
    if (!BenchResult.STATUS_OK.equals(r.status)) {
      return ": " + r.error;
    }
    return String.format(java.util.Locale.ROOT,
        ": median %.3f ms, trimmed mean %.3f ms, mean %.3f ms, p90 %.3f ms, load %.1f ms, PSS growth %s",
        r.medianMs(), r.trimmedMeanMs(), Stats.mean(r.perIterationMs), r.p90Ms(), r.loadTimeMs,
        r.peakMemoryMb == null ? "n/a" : String.format(java.util.Locale.ROOT, "%.1f MB", r.peakMemoryMb));
  }

  private void writeResults(File file, List<BenchResult> results) throws IOException {
    ResultJson.writeAtomic(file, ResultJson.toJson(results, ResultJson.isoUtc(wallClock.millis())));
  }

  private BenchResult newResult(ArtifactInfo info) {
    BenchResult r = new BenchResult();
    r.model = info.model;
    r.artifact = info.artifact.getName();
    r.backend = info.backend;
    r.precision = info.precision;
    r.device = device;
    r.inputShape = info.inputShape == null ? new long[0] : info.inputShape;
    r.batch = info.inputShape == null || info.inputShape.length == 0 ? 1 : Math.max(1, info.inputShape[0]);
    r.warmup = config.warmup;
    r.trimFraction = config.trimFraction;
    r.toolVersions = new LinkedHashMap<>(toolVersions);
    return r;
  }

  /** Benchmarks one artifact into {@code results}; returns its device-outputs file, if one was written. */
  private File benchOne(ArtifactInfo info, List<BenchResult> results, List<String> problems) throws IOException {
    BenchResult r = newResult(info);
    results.add(r);
    try {
      r.artifactSha256 = Files2.sha256(info.artifact);
    } catch (IOException e) {
      r.fail(BenchResult.STATUS_FAILED, "cannot read " + info.artifact.getName() + ": " + e.getMessage());
      return null;
    }
    if (info.problem != null) {
      r.fail(BenchResult.STATUS_FAILED, info.problem);
      return null;
    }
    if (info.manifestSha256 != null && !info.manifestSha256.equals(r.artifactSha256)) {
      r.fail(BenchResult.STATUS_FAILED, "sha256 differs from the manifest: the .pte on the phone is not the one "
          + "the manifest describes (incomplete push, or a stale file); push it again");
      return null;
    }
    if (info.backend != null && APPLE_ONLY_BACKENDS.contains(info.backend)) {
      r.fail(BenchResult.STATUS_NOT_RUN, "the " + info.backend + " delegate runs only on Apple devices");
      return null;
    }
    ValidationBundle bundle = null;
    float[] input = null;
    if (info.bundleDir().isDirectory()) {
      try {
        bundle = ValidationBundle.read(info.bundleDir());
        if (!bundle.inputs.isEmpty() && Arrays.equals(bundle.inputs.get(0).shape, info.inputShape)) {
          input = bundle.inputs.get(0).read();
        }
      } catch (IOException e) {
        problems.add(info.artifact.getName() + ": validation inputs unreadable: " + e.getMessage());
        bundle = null;
      }
    }
    if (input == null) {
      input = randomInput(info.inputShape); // timing does not depend on the values
    }
    Runner runner;
    try {
      runner = factory.open(info);
    } catch (Exception e) {
      r.fail(BenchResult.STATUS_FAILED, "cannot open the runtime: " + e);
      return null;
    }
    try {
      if (!loop.measure(runner, input, info.inputShape, config.warmup, config.iterations, r)) {
        return null;
      }
      return bundle == null ? null : runValidation(info, r.artifactSha256, bundle, runner, problems);
    } finally {
      runner.close();
    }
  }

  static float[] randomInput(long[] shape) {
    float[] x = new float[(int) ValidationBundle.numel(shape)];
    Random random = new Random(0);
    for (int i = 0; i < x.length; i++) {
      x[i] = (float) random.nextGaussian();
    }
    return x;
  }

  /** Runs every validation input after the timing (so it never disturbs it) and writes the outputs. */
  private File runValidation(ArtifactInfo info, String sha256, ValidationBundle bundle, Runner runner,
                             List<String> problems) throws IOException {
    DeviceOutputs outputs =
        new DeviceOutputs(info.artifact.getName(), sha256, device, ResultJson.isoUtc(wallClock.millis()));
    for (ValidationBundle.Entry entry : bundle.inputs) {
      try {
        runner.setInput(entry.read(), entry.shape);
        float[] values = runner.run();
        outputs.add(entry.name, runner.outputShape(), values);
      } catch (IOException | RunnerException e) {
        String why = "validation input " + entry.name + " failed: " + e.getMessage();
        outputs.setError(why);
        problems.add(info.artifact.getName() + ": " + why);
        break;
      }
    }
    File file = new File(config.outDir, info.deviceOutputsName());
    ResultJson.writeAtomic(file, outputs.toJson());
    return file;
  }
}
