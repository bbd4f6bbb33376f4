package dev.edgevit.harness.core;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/** File helpers the JDK 8 / Android API 26 common subset lacks in one call. */
public final class Files2 {
  private Files2() {}

  public static byte[] readBytes(File file) throws IOException {
    try (InputStream in = new FileInputStream(file)) {
      ByteArrayOutputStream out = new ByteArrayOutputStream((int) Math.max(0, Math.min(file.length(), 1 << 30)));
      byte[] buf = new byte[1 << 16];
      int n;
      while ((n = in.read(buf)) > 0) {
        out.write(buf, 0, n);
      }
      return out.toByteArray();
    }
  }

  public static String readText(File file) throws IOException {
    return new String(readBytes(file), StandardCharsets.UTF_8);
  }

  /** Lower-case hex SHA-256, streamed: artifacts can be hundreds of MB. */
  public static String sha256(File file) throws IOException {
    MessageDigest digest;
    try {
      digest = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IOException("SHA-256 unavailable", e);
    }
    try (InputStream in = new FileInputStream(file)) {
      byte[] buf = new byte[1 << 20];
      int n;
      while ((n = in.read(buf)) > 0) {
        digest.update(buf, 0, n);
      }
    }
    StringBuilder hex = new StringBuilder(64);
    for (byte b : digest.digest()) {
      hex.append(String.format("%02x", b & 0xff));
    }
    return hex.toString();
  }
}
