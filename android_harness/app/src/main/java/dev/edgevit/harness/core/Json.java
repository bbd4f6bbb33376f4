package dev.edgevit.harness.core;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small JSON writer and reader. The harness core may use only the JDK (no Gson, no org.json) so that it
 * compiles and is tested with plain javac off-device.
 *
 * <p>Writing: Map (insertion order kept), List, String, Boolean, null, Integer/Long, Float/Double and primitive
 * arrays. A float is written as the decimal of its exact double value, so Python reads back the identical
 * float32. JSON has no NaN or Infinity: non-finite numbers are written as null (numpy reads null as nan).
 *
 * <p>Reading: objects become LinkedHashMap, arrays ArrayList, integers without fraction or exponent Long,
 * other numbers Double.
 */
public final class Json {
  private Json() {}

  /** Serializes {@code value}; {@code pretty} indents objects and arrays of containers by two spaces. */
  public static String write(Object value, boolean pretty) {
    StringBuilder sb = new StringBuilder();
    write(value, sb, pretty ? 0 : -1);
    return sb.toString();
  }

  private static void newline(StringBuilder sb, int indent) {
    sb.append('\n');
    for (int i = 0; i < indent; i++) {
      sb.append("  ");
    }
  }

  private static boolean isContainer(Object value) {
    return value instanceof Map || value instanceof List;
  }

  private static void write(Object value, StringBuilder sb, int indent) {
    if (value == null) {
      sb.append("null");
    } else if (value instanceof String) {
      writeString((String) value, sb);
    } else if (value instanceof Boolean) {
      sb.append(value.toString());
    } else if (value instanceof Integer || value instanceof Long || value instanceof Short) {
      sb.append(value.toString());
    } else if (value instanceof Float) {
      writeDouble(((Float) value).doubleValue(), sb);
    } else if (value instanceof Double) {
      writeDouble((Double) value, sb);
    } else if (value instanceof Map) {
      writeMap((Map<?, ?>) value, sb, indent);
    } else if (value instanceof List) {
      writeList((List<?>) value, sb, indent);
    } else if (value instanceof double[]) {
      double[] a = (double[]) value;
      sb.append('[');
      for (int i = 0; i < a.length; i++) {
        sb.append(i == 0 ? "" : ", ");
        writeDouble(a[i], sb);
      }
      sb.append(']');
    } else if (value instanceof float[]) {
      float[] a = (float[]) value;
      sb.append('[');
      for (int i = 0; i < a.length; i++) {
        sb.append(i == 0 ? "" : ", ");
        writeDouble(a[i], sb);
      }
      sb.append(']');
    } else if (value instanceof long[]) {
      long[] a = (long[]) value;
      sb.append('[');
      for (int i = 0; i < a.length; i++) {
        sb.append(i == 0 ? "" : ", ").append(a[i]);
      }
      sb.append(']');
    } else if (value instanceof int[]) {
      int[] a = (int[]) value;
      sb.append('[');
      for (int i = 0; i < a.length; i++) {
        sb.append(i == 0 ? "" : ", ").append(a[i]);
      }
      sb.append(']');
    } else {
      throw new IllegalArgumentException("cannot write " + value.getClass().getName() + " as JSON");
    }
  }

  private static void writeDouble(double d, StringBuilder sb) {
    if (Double.isNaN(d) || Double.isInfinite(d)) {
      sb.append("null");
    } else if (d == Math.rint(d) && Math.abs(d) < 1e15) {
      sb.append((long) d).append(".0"); // "3.0", never "3.0E0"; keeps it a float for readers
    } else {
      sb.append(Double.toString(d)); // e.g. 12.5 or 1.0E-5: both valid JSON numbers
    }
  }

  private static void writeMap(Map<?, ?> map, StringBuilder sb, int indent) {
    sb.append('{');
    boolean first = true;
    for (Map.Entry<?, ?> e : map.entrySet()) {
      sb.append(first ? "" : ",");
      first = false;
      if (indent >= 0) {
        newline(sb, indent + 1);
      }
      writeString(String.valueOf(e.getKey()), sb);
      sb.append(indent >= 0 ? ": " : ":");
      write(e.getValue(), sb, indent >= 0 ? indent + 1 : -1);
    }
    if (indent >= 0 && !map.isEmpty()) {
      newline(sb, indent);
    }
    sb.append('}');
  }

  private static void writeList(List<?> list, StringBuilder sb, int indent) {
    boolean nested = false;
    for (Object item : list) {
      nested |= isContainer(item);
    }
    sb.append('[');
    for (int i = 0; i < list.size(); i++) {
      if (i > 0) {
        sb.append(indent >= 0 && !nested ? ", " : ",");
      }
      if (indent >= 0 && nested) {
        newline(sb, indent + 1);
      }
      write(list.get(i), sb, indent >= 0 ? indent + 1 : -1);
    }
    if (indent >= 0 && nested) {
      newline(sb, indent);
    }
    sb.append(']');
  }

  private static void writeString(String s, StringBuilder sb) {
    sb.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"':
          sb.append("\\\"");
          break;
        case '\\':
          sb.append("\\\\");
          break;
        case '\n':
          sb.append("\\n");
          break;
        case '\r':
          sb.append("\\r");
          break;
        case '\t':
          sb.append("\\t");
          break;
        default:
          if (c < 0x20 || c == 0x2028 || c == 0x2029) {
            sb.append(String.format("\\u%04x", (int) c));
          } else {
            sb.append(c);
          }
      }
    }
    sb.append('"');
  }

  /** Parses one JSON value; throws IllegalArgumentException naming the offset of a syntax error. */
  public static Object parse(String text) {
    Parser p = new Parser(text);
    p.skipSpace();
    Object value = p.value();
    p.skipSpace();
    if (p.pos != text.length()) {
      throw p.error("trailing characters");
    }
    return value;
  }

  private static final class Parser {
    private final String s;
    private int pos;

    Parser(String s) {
      this.s = s;
    }

    IllegalArgumentException error(String what) {
      return new IllegalArgumentException("invalid JSON at character " + pos + ": " + what);
    }

    void skipSpace() {
      while (pos < s.length() && " \t\r\n".indexOf(s.charAt(pos)) >= 0) {
        pos++;
      }
    }

    Object value() {
      if (pos >= s.length()) {
        throw error("unexpected end");
      }
      char c = s.charAt(pos);
      if (c == '{') {
        return object();
      } else if (c == '[') {
        return array();
      } else if (c == '"') {
        return string();
      } else if (s.startsWith("true", pos)) {
        pos += 4;
        return Boolean.TRUE;
      } else if (s.startsWith("false", pos)) {
        pos += 5;
        return Boolean.FALSE;
      } else if (s.startsWith("null", pos)) {
        pos += 4;
        return null;
      } else if (c == '-' || (c >= '0' && c <= '9')) {
        return number();
      }
      throw error("unexpected '" + c + "'");
    }

    Map<String, Object> object() {
      Map<String, Object> map = new LinkedHashMap<>();
      pos++;
      skipSpace();
      if (pos < s.length() && s.charAt(pos) == '}') {
        pos++;
        return map;
      }
      while (true) {
        skipSpace();
        if (pos >= s.length() || s.charAt(pos) != '"') {
          throw error("expected a key");
        }
        String key = string();
        skipSpace();
        expect(':');
        skipSpace();
        map.put(key, value());
        skipSpace();
        if (pos < s.length() && s.charAt(pos) == ',') {
          pos++;
        } else {
          expect('}');
          return map;
        }
      }
    }

    List<Object> array() {
      List<Object> list = new ArrayList<>();
      pos++;
      skipSpace();
      if (pos < s.length() && s.charAt(pos) == ']') {
        pos++;
        return list;
      }
      while (true) {
        skipSpace();
        list.add(value());
        skipSpace();
        if (pos < s.length() && s.charAt(pos) == ',') {
          pos++;
        } else {
          expect(']');
          return list;
        }
      }
    }

    void expect(char c) {
      if (pos >= s.length() || s.charAt(pos) != c) {
        throw error("expected '" + c + "'");
      }
      pos++;
    }

    String string() {
      StringBuilder sb = new StringBuilder();
      pos++;
      while (true) {
        if (pos >= s.length()) {
          throw error("unterminated string");
        }
        char c = s.charAt(pos++);
        if (c == '"') {
          return sb.toString();
        }
        if (c != '\\') {
          sb.append(c);
          continue;
        }
        if (pos >= s.length()) {
          throw error("unterminated escape");
        }
        char e = s.charAt(pos++);
        switch (e) {
          case '"':
          case '\\':
          case '/':
            sb.append(e);
            break;
          case 'b':
            sb.append('\b');
            break;
          case 'f':
            sb.append('\f');
            break;
          case 'n':
            sb.append('\n');
            break;
          case 'r':
            sb.append('\r');
            break;
          case 't':
            sb.append('\t');
            break;
          case 'u':
            if (pos + 4 > s.length()) {
              throw error("short \\u escape");
            }
            try {
              sb.append((char) Integer.parseInt(s.substring(pos, pos + 4), 16));
            } catch (NumberFormatException ex) {
              throw error("bad \\u escape");
            }
            pos += 4;
            break;
          default:
            throw error("bad escape \\" + e);
        }
      }
    }

    Object number() {
      int start = pos;
      boolean integral = true;
      if (s.charAt(pos) == '-') {
        pos++;
      }
      while (pos < s.length()) {
        char c = s.charAt(pos);
        if (c >= '0' && c <= '9') {
          pos++;
        } else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
          integral = false;
          pos++;
        } else {
          break;
        }
      }
      String token = s.substring(start, pos);
      try {
        if (integral) {
          return Long.parseLong(token);
        }
        return Double.parseDouble(token);
      } catch (NumberFormatException ex) {
        if (integral) {
          try {
            return Double.parseDouble(token);
          } catch (NumberFormatException ignored) {
            // fall through to the error below
          }
        }
        pos = start;
        throw error("bad number '" + token + "'");
      }
    }
  }

  /** A JSON number as a double, or {@code fallback} for null/missing/non-numbers. */
  public static double asDouble(Object value, double fallback) {
    return value instanceof Number ? ((Number) value).doubleValue() : fallback;
  }

  /** A JSON array of integers as long[], or null when it is not one. */
  public static long[] asLongArray(Object value) {
    if (!(value instanceof List)) {
      return null;
    }
    List<?> list = (List<?>) value;
    long[] out = new long[list.size()];
    for (int i = 0; i < out.length; i++) {
      Object item = list.get(i);
      if (!(item instanceof Long)) {
        return null;
      }
      out[i] = (Long) item;
    }
    return out;
  }
}
