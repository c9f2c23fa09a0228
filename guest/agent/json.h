// A small JSON DOM (RFC 8259) for the OCI spec: parse, edit a few members, serialize.
// Numbers are kept as their source text; depth and size are bounded by the parser.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace json {

struct Value {
  enum class Kind { Null, Bool, Number, String, Array, Object } kind = Kind::Null;
  bool b = false;
  std::string s;                                     // String text or Number source text
  std::vector<Value> items;                          // Array
  std::vector<std::pair<std::string, Value>> members;  // Object (order kept)

  Value* get(std::string_view key);                  // Object member or nullptr
  void set(const std::string& key, Value v);         // replace or append
  void erase(std::string_view key);
  static Value string(std::string v) { Value x; x.kind = Kind::String; x.s = std::move(v); return x; }
  static Value object() { Value x; x.kind = Kind::Object; return x; }
};

constexpr int kMaxDepth = 64;
bool parse(std::string_view text, Value& out, std::string& err);
std::string serialize(const Value& v);

}  // namespace json
