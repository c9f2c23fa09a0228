#include "json.h"

#include <cstdio>

namespace json {

Value* Value::get(std::string_view key) {
  if (kind != Kind::Object) return nullptr;
  for (auto& m : members)
    if (m.first == key) return &m.second;
  return nullptr;
}

void Value::set(const std::string& key, Value v) {
  if (Value* e = get(key)) { *e = std::move(v); return; }
  members.emplace_back(key, std::move(v));
}

void Value::erase(std::string_view key) {
  for (auto it = members.begin(); it != members.end(); ++it)
    if (it->first == key) { members.erase(it); return; }
}

namespace {

struct Parser {
  const char* p;
  const char* end;
  std::string err;

  bool fail(const std::string& what) {
    if (err.empty()) err = what;
    return false;
  }
  void ws() { while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++; }
  bool lit(const char* w) {
    for (const char* q = w; *q; q++, p++)
      if (p >= end || *p != *q) return fail(std::string("invalid literal, expected ") + w);
    return true;
  }
  static void utf8(std::string& o, unsigned cp) {
    if (cp < 0x80) o.push_back(static_cast<char>(cp));
    else if (cp < 0x800) { o.push_back(static_cast<char>(0xc0 | (cp >> 6))); o.push_back(static_cast<char>(0x80 | (cp & 0x3f))); }
    else if (cp < 0x10000) {
      o.push_back(static_cast<char>(0xe0 | (cp >> 12)));
      o.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      o.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      o.push_back(static_cast<char>(0xf0 | (cp >> 18)));
      o.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      o.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      o.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }
  bool hex4(unsigned& v) {
    if (end - p < 4) return fail("truncated \\u escape");
    v = 0;
    for (int i = 0; i < 4; i++, p++) {
      char c = *p;
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
      else return fail("bad hex digit in \\u escape");
    }
    return true;
  }
  bool str(std::string& o) {
    p++;  // opening quote
    for (;;) {
      if (p >= end) return fail("unterminated string");
      char c = *p++;
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return fail("control character in string");
      if (c != '\\') { o.push_back(c); continue; }
      if (p >= end) return fail("unterminated escape");
      char e = *p++;
      switch (e) {
        case '"': o.push_back('"'); break;
        case '\\': o.push_back('\\'); break;
        case '/': o.push_back('/'); break;
        case 'b': o.push_back('\b'); break;
        case 'f': o.push_back('\f'); break;
        case 'n': o.push_back('\n'); break;
        case 'r': o.push_back('\r'); break;
        case 't': o.push_back('\t'); break;
        case 'u': {
          unsigned cp;
          if (!hex4(cp)) return false;
          if (cp >= 0xd800 && cp <= 0xdbff) {  // surrogate pair (RFC 8259 §7)
            unsigned lo;
            if (end - p < 2 || p[0] != '\\' || p[1] != 'u') return fail("lone high surrogate");
            p += 2;
            if (!hex4(lo)) return false;
            if (lo < 0xdc00 || lo > 0xdfff) return fail("bad low surrogate");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            return fail("lone low surrogate");
          }
          utf8(o, cp);
          break;
        }
        default: return fail("invalid escape");
      }
    }
  }
  bool number(Value& v) {
    const char* s = p;
    if (p < end && *p == '-') p++;
    if (p >= end || !(*p >= '0' && *p <= '9')) return fail("invalid number");
    while (p < end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-')) p++;
    v.kind = Value::Kind::Number;
    v.s.assign(s, static_cast<size_t>(p - s));
    return true;
  }
  bool value(Value& v, int depth) {
    if (depth > kMaxDepth) return fail("nesting deeper than 64");
    ws();
    if (p >= end) return fail("unexpected end of input");
    switch (*p) {
      case 'n': v.kind = Value::Kind::Null; return lit("null");
      case 't': v.kind = Value::Kind::Bool; v.b = true; return lit("true");
      case 'f': v.kind = Value::Kind::Bool; v.b = false; return lit("false");
      case '"': v.kind = Value::Kind::String; return str(v.s);
      case '[': {
        p++;
        v.kind = Value::Kind::Array;
        ws();
        if (p < end && *p == ']') { p++; return true; }
        for (;;) {
          v.items.emplace_back();
          if (!value(v.items.back(), depth + 1)) return false;
          ws();
          if (p < end && *p == ',') { p++; continue; }
          if (p < end && *p == ']') { p++; return true; }
          return fail("expected ',' or ']'");
        }
      }
      case '{': {
        p++;
        v.kind = Value::Kind::Object;
        ws();
        if (p < end && *p == '}') { p++; return true; }
        for (;;) {
          ws();
          if (p >= end || *p != '"') return fail("expected a member name");
          std::string key;
          if (!str(key)) return false;
          ws();
          if (p >= end || *p != ':') return fail("expected ':'");
          p++;
          Value child;
          if (!value(child, depth + 1)) return false;
          v.members.emplace_back(std::move(key), std::move(child));
          ws();
          if (p < end && *p == ',') { p++; continue; }
          if (p < end && *p == '}') { p++; return true; }
          return fail("expected ',' or '}'");
        }
      }
      default: return number(v);
    }
  }
};

void quote(std::string& o, const std::string& s) {
  o.push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\r': o += "\\r"; break;
      case '\t': o += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          o += buf;
        } else {
          o.push_back(c);
        }
    }
  }
  o.push_back('"');
}

void write(std::string& o, const Value& v) {
  switch (v.kind) {
    case Value::Kind::Null: o += "null"; break;
    case Value::Kind::Bool: o += v.b ? "true" : "false"; break;
    case Value::Kind::Number: o += v.s; break;
    case Value::Kind::String: quote(o, v.s); break;
    case Value::Kind::Array:
      o.push_back('[');
      for (size_t i = 0; i < v.items.size(); i++) { if (i) o.push_back(','); write(o, v.items[i]); }
      o.push_back(']');
      break;
    case Value::Kind::Object:
      o.push_back('{');
      for (size_t i = 0; i < v.members.size(); i++) {
        if (i) o.push_back(',');
        quote(o, v.members[i].first);
        o.push_back(':');
        write(o, v.members[i].second);
      }
      o.push_back('}');
      break;
  }
}

}  // namespace

bool parse(std::string_view text, Value& out, std::string& err) {
  Parser ps{text.data(), text.data() + text.size(), {}};
  out = Value();
  if (!ps.value(out, 0)) { err = ps.err + " at byte " + std::to_string(ps.p - text.data()); return false; }
  ps.ws();
  if (ps.p != ps.end) { err = "trailing data at byte " + std::to_string(ps.p - text.data()); return false; }
  return true;
}

std::string serialize(const Value& v) {
  std::string o;
  write(o, v);
  return o;
}

}  // namespace json
