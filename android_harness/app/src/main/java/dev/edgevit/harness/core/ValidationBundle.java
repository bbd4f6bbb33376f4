package dev.edgevit.harness.core;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The validation inputs the converter writes beside each artifact ({@code X.validation/index.json}, format
 * edgevit-validation/1): each input's preprocessed NCHW tensor as raw little-endian float32. The app runs
 * them and writes the outputs so `edgevit validate --device-outputs` can compare them with the original model.
 */
public final class ValidationBundle {
  public static final String FORMAT = "edgevit-validation/1";

  /** One input: its name and where its tensor is. */
  public static final class Entry {
    public final String name;
    public final File tensorFile;
    public final long[] shape;

    Entry(String name, File tensorFile, long[] shape) {
      this.name = name;
      this.tensorFile = tensorFile;
      this.shape = shape;
    }

    /** The tensor, checked against its shape; the file is little-endian whatever the phone's byte order. */
    public float[] read() throws IOException {
      byte[] bytes = Files2.readBytes(tensorFile);
      long numel = numel(shape);
      if (bytes.length != numel * 4) {
        throw new IOException(tensorFile.getName() + " has " + bytes.length + " bytes, shape needs " + numel * 4);
      }
      float[] out = new float[(int) numel];
      ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
      return out;
    }
  }

  public final List<Entry> inputs;
  public final long[] outputShape;

  private ValidationBundle(List<Entry> inputs, long[] outputShape) {
    this.inputs = inputs;
    this.outputShape = outputShape;
  }

  public static long numel(long[] shape) {
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    return n;
  }

  public static ValidationBundle read(File dir) throws IOException {
    File index = new File(dir, "index.json");
    Object parsed;
    try {
      parsed = Json.parse(Files2.readText(index));
    } catch (IllegalArgumentException e) {
      throw new IOException(index + ": " + e.getMessage(), e);
    }
    if (!(parsed instanceof Map) || !FORMAT.equals(((Map<?, ?>) parsed).get("format"))) {
      throw new IOException(index + " is not " + FORMAT);
    }
    Map<?, ?> m = (Map<?, ?>) parsed;
    List<Entry> entries = new ArrayList<>();
    Object inputs = m.get("inputs");
    if (inputs instanceof List) {
      for (Object item : (List<?>) inputs) {
        Map<?, ?> e = (Map<?, ?>) item;
        long[] shape = Json.asLongArray(e.get("shape"));
        if (!(e.get("name") instanceof String) || !(e.get("tensor") instanceof String) || shape == null) {
          throw new IOException(index + ": every input needs name, tensor and shape");
        }
        entries.add(new Entry((String) e.get("name"), new File(dir, (String) e.get("tensor")), shape));
      }
    }
    return new ValidationBundle(entries, Json.asLongArray(m.get("output_shape")));
  }
}
