package dev.edgevit.harness.core;

/**
 * The process's memory now, in KiB. On Android this is the proportional set size (Debug.getPss(), the number
 * ExecuTorch's own benchmark app reports); it is expensive to read (it walks smaps), so the loop samples it
 * only between phases, never inside the timed iterations.
 */
public interface MemoryProbe {
  /** Current memory in KiB, or a negative number when it cannot be read. */
  long kib();

  /** What the number measures, for the schema's memory_kind ("pss" on Android). */
  String kind();

  /** A probe for hosts without one: every reading is "unknown", so peak_memory_mb stays null. */
  MemoryProbe NONE =
      new MemoryProbe() {
        @Override
        public long kib() {
          return -1;
        }

        @Override
        public String kind() {
          return null;
        }
      };
}
