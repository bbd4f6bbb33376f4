package dev.edgevit.harness.core;

/**
 * Names and hints for ExecuTorch's runtime error codes (runtime/core/error.h), so a failed load says more
 * than a number. ExecuTorch's benchmark app reports the bare code as load_status; we keep the code too.
 */
public final class ExecuTorchErrors {
  private ExecuTorchErrors() {}

  public static String name(int code) {
    switch (code) {
      case 0x00:
        return "Ok";
      case 0x01:
        return "Internal";
      case 0x02:
        return "InvalidState";
      case 0x03:
        return "EndOfMethod";
      case 0x10:
        return "NotSupported";
      case 0x11:
        return "NotImplemented";
      case 0x12:
        return "InvalidArgument";
      case 0x13:
        return "InvalidType";
      case 0x14:
        return "OperatorMissing";
      case 0x20:
        return "NotFound";
      case 0x21:
        return "MemoryAllocationFailed";
      case 0x22:
        return "AccessFailed";
      case 0x23:
        return "InvalidProgram";
      case 0x30:
        return "DelegateInvalidCompatibility";
      case 0x31:
        return "DelegateMemoryAllocationFailed";
      case 0x32:
        return "DelegateInvalidHandle";
      default:
        return "unknown";
    }
  }

  /** What a user can do about the error, or an empty string. */
  public static String hint(int code) {
    switch (code) {
      case 0x14:
        return "; the runtime in the app lacks a kernel this .pte needs: build the app against an "
            + "executorch-android AAR that includes it, or export with the op delegated";
      case 0x22:
        return "; the app cannot read the file: check it was pushed whole and is world-readable "
            + "(adb shell chmod -R a+rX /data/local/tmp/edgevit)";
      case 0x23:
        return "; not a valid .pte for this runtime: was it exported by a newer ExecuTorch than the app's AAR?";
      case 0x30:
        return "; the app's runtime lacks this backend or a compatible version of it "
            + "(a CoreML-delegated .pte only runs on Apple devices; match the AAR version to the exporter)";
      default:
        return "";
    }
  }

  /** e.g. "ExecuTorch error 0x14 (OperatorMissing)". */
  public static String describe(int code) {
    return String.format("ExecuTorch error 0x%x (%s)", code, name(code));
  }
}
