package dev.edgevit.harness.core;

/** A runtime failure with the runtime's error code (ExecuTorch's load_status), -1 when it gave none. */
public class RunnerException extends Exception {
  private static final long serialVersionUID = 1L;

  private final int code;

  public RunnerException(int code, String message, Throwable cause) {
    super(message, cause);
    this.code = code;
  }

  public RunnerException(int code, String message) {
    this(code, message, null);
  }

  public int code() {
    return code;
  }
}
