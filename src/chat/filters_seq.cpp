// filters_seq.cpp: sequence and mapping filters (length, first, last, join, default, items, list, select*,
// reject*, map, sum, unique, sort, reverse, dictsort, batch, max, min, attr). Like jinja2, select/reject/map/
// unique/batch and reverse of a list return one-shot iterators.
#include <algorithm>

#include "chat/filters_impl.h"
#include "chat/operators.h"
#include "chat/py_str.h"

namespace ls::chat::filters {

namespace {

Value iterator_of(std::vector<Value> items) { return Value::list(std::move(items), ListKind::kIterator); }

// Key for case-insensitive comparisons (jinja2's ignore_case).
Value fold_case(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::string(py_lower(v.as_string()));
  return v;
}

Result<Value> key_of(Interpreter& in, const Value& item, const Value& attribute, bool case_sensitive) {
  Value k = item;
  if (!attribute.is_none() && !attribute.is_undefined()) {
    LS_ASSIGN_OR_RETURN(k, get_attribute_path(in, item, attribute));
  }
  return fold_case(k, case_sensitive);
}

// Shared body of select/reject/selectattr/rejectattr.
Result<Value> select_or_reject(Interpreter& in, const Value& v, CallArgs& args, bool keep_matches, bool lookup_attr) {
  if (!truthy(v)) return iterator_of({});  // jinja2 iterates only a truthy value
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterable_items(v));
  size_t off = 0;
  Value attr;
  if (lookup_attr) {
    if (args.positional.empty()) return invalid_argument("Missing parameter for attribute name");
    attr = args.positional[0];
    off = 1;
  }
  std::string test;
  CallArgs test_args;
  if (args.positional.size() > off) {
    if (!args.positional[off].is_string()) return invalid_argument("test name must be a string");
    test = args.positional[off].as_string();
    test_args.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(off + 1), args.positional.end());
    test_args.keyword = args.keyword;
  }
  std::vector<Value> out;
  for (const Value& item : items) {
    Value subject = item;
    if (lookup_attr) {
      LS_ASSIGN_OR_RETURN(subject, get_attribute_path(in, item, attr));
    }
    bool match = false;
    if (test.empty()) {
      match = truthy(subject);
    } else {
      CallArgs a = test_args;
      LS_ASSIGN_OR_RETURN(match, in.apply_test(test, subject, a));
    }
    if (match == keep_matches) out.push_back(item);
  }
  return iterator_of(std::move(out));
}

Result<Value> min_or_max(Interpreter& in, const Value& v, CallArgs& args, bool want_max) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"case_sensitive", "attribute"}, want_max ? "max" : "min"));
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterable_items(v));
  if (items.empty()) return Value::undefined();
  const bool cs = truthy(b.get(0));
  size_t best = 0;
  LS_ASSIGN_OR_RETURN(Value best_key, key_of(in, items[0], b.get(1), cs));
  for (size_t i = 1; i < items.size(); ++i) {
    LS_ASSIGN_OR_RETURN(Value k, key_of(in, items[i], b.get(1), cs));
    LS_ASSIGN_OR_RETURN(bool better, want_max ? value_less(best_key, k) : value_less(k, best_key));
    if (better) {
      best = i;
      best_key = std::move(k);
    }
  }
  return items[best];
}

}  // namespace

Result<Value> length(Interpreter&, const Value& v, CallArgs& args) {
  if (!args.positional.empty() || !args.keyword.empty()) return invalid_argument("length() takes no arguments");
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return Value::integer(0);
    case Value::Kind::kString:
      return Value::integer(static_cast<int64_t>(unicode::count_chars(v.as_string())));
    case Value::Kind::kList:
      if (v.as_list().kind == ListKind::kIterator) break;
      return Value::integer(static_cast<int64_t>(v.as_list().items.size()));
    case Value::Kind::kDict:
      if (v.as_dict().is_namespace) break;
      return Value::integer(static_cast<int64_t>(v.as_dict().entries.size()));
    default:
      break;
  }
  return invalid_argument(std::string("object of type '") + type_name(v) + "' has no len()");
}

Result<Value> first(Interpreter&, const Value& v, CallArgs& args) {
  if (!args.positional.empty() || !args.keyword.empty()) return invalid_argument("first() takes no arguments");
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterable_items(v));
  return items.empty() ? Value::undefined() : items.front();
}

Result<Value> last(Interpreter&, const Value& v, CallArgs& args) {
  if (!args.positional.empty() || !args.keyword.empty()) return invalid_argument("last() takes no arguments");
  if (v.is_list() && v.as_list().kind == ListKind::kIterator) return invalid_argument("'generator' object is not reversible");
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterable_items(v));
  return items.empty() ? Value::undefined() : items.back();
}

Result<Value> join(Interpreter& in, const Value& v, CallArgs& args) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"d", "attribute"}, "join"));
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterable_items(v));
  LS_ASSIGN_OR_RETURN(std::string sep, value_str(in, b.get_or(0, Value::string(""))));
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    Value item = items[i];
    if (b.has(1) && !b.get(1).is_none()) {
      LS_ASSIGN_OR_RETURN(item, get_attribute_path(in, item, b.get(1)));
    }
    if (i) out += sep;
    if (!append_str(out, item, in.limits().max_output_bytes)) return resource_exhausted("template exceeded its string size limit");
  }
  return Value::string(std::move(out));
}

Result<Value> default_value(Interpreter&, const Value& v, CallArgs& args) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"default_value", "boolean"}, "default"));
  if (v.is_undefined() || (truthy(b.get(1)) && !truthy(v))) return b.get_or(0, Value::string(""));
  return v;
}

Result<Value> items(Interpreter&, const Value& v, CallArgs& args) {
  if (!args.positional.empty() || !args.keyword.empty()) return invalid_argument("items() takes no arguments");
  if (v.is_undefined()) return iterator_of({});
  if (!v.is_dict() || v.as_dict().is_namespace) return invalid_argument("Can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, val] : v.as_dict().entries) out.push_back(Value::list({k, val}, ListKind::kTuple));
  return iterator_of(std::move(out));
}

Result<Value> list(Interpreter&, const Value& v, CallArgs& args) {
  if (!args.positional.empty() || !args.keyword.empty()) return invalid_argument("list() takes no arguments");
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterable_items(v));
  return Value::list(std::move(items));
}

Result<Value> selectattr(Interpreter& in, const Value& v, CallArgs& a) { return select_or_reject(in, v, a, true, true); }
Result<Value> rejectattr(Interpreter& in, const Value& v, CallArgs& a) { return select_or_reject(in, v, a, false, true); }
Result<Value> select(Interpreter& in, const Value& v, CallArgs& a) { return select_or_reject(in, v, a, true, false); }
Result<Value> reject(Interpreter& in, const Value& v, CallArgs& a) { return select_or_reject(in, v, a, false, false); }

Result<Value> map(Interpreter& in, const Value& v, CallArgs& args) {
  if (!truthy(v)) return iterator_of({});  // jinja2 iterates only a truthy value
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterable_items(v));
  std::vector<Value> out;
  if (args.positional.empty()) {
    Value attribute, dflt;
    bool has_attribute = false, has_default = false;
    for (const auto& [k, val] : args.keyword) {
      if (k == "attribute") {
        attribute = val;
        has_attribute = true;
      } else if (k == "default") {
        dflt = val;
        has_default = true;
      } else {
        return invalid_argument("Unexpected keyword argument '" + k + "'");
      }
    }
    if (!has_attribute) return invalid_argument("map requires a filter argument");
    for (const Value& item : items) {
      LS_ASSIGN_OR_RETURN(Value x, get_attribute_path(in, item, attribute));
      out.push_back(x.is_undefined() && has_default ? dflt : x);
    }
    return iterator_of(std::move(out));
  }
  if (!args.positional[0].is_string()) return invalid_argument("map filter name must be a string");
  const std::string name = args.positional[0].as_string();
  CallArgs rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  for (const Value& item : items) {
    CallArgs a = rest;
    LS_ASSIGN_OR_RETURN(Value x, in.apply_filter(name, item, a));
    out.push_back(std::move(x));
  }
  return iterator_of(std::move(out));
}

Result<Value> sum(Interpreter& in, const Value& v, CallArgs& args) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"attribute", "start"}, "sum"));
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterable_items(v));
  Value total = b.get_or(1, Value::integer(0));
  for (const Value& item : items) {
    Value x = item;
    if (b.has(0) && !b.get(0).is_none()) {
      LS_ASSIGN_OR_RETURN(x, get_attribute_path(in, item, b.get(0)));
    }
    LS_ASSIGN_OR_RETURN(total, binary_op(in, "+", total, x));
  }
  return total;
}

Result<Value> unique(Interpreter& in, const Value& v, CallArgs& args) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"case_sensitive", "attribute"}, "unique"));
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterable_items(v));
  std::vector<Value> seen, out;
  for (const Value& item : items) {
    LS_ASSIGN_OR_RETURN(Value k, key_of(in, item, b.get(1), truthy(b.get(0))));
    if (k.is_list() || k.is_dict()) return invalid_argument(std::string("unhashable type: '") + type_name(k) + "'");
    bool dup = false;
    for (const Value& s : seen) dup = dup || values_equal(s, k);
    if (dup) continue;
    LS_RETURN_IF_ERROR(in.tick());
    seen.push_back(std::move(k));
    out.push_back(item);
  }
  return iterator_of(std::move(out));
}

Result<Value> sort(Interpreter& in, const Value& v, CallArgs& args) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"reverse", "case_sensitive", "attribute"}, "sort"));
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterable_items(v));
  std::vector<std::pair<Value, Value>> keyed;
  for (const Value& item : items) {
    LS_ASSIGN_OR_RETURN(Value k, key_of(in, item, b.get(2), truthy(b.get(1))));
    keyed.emplace_back(std::move(k), item);
  }
  Status error;
  const bool rev = truthy(b.get(0));
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    auto r = rev ? value_less(y.first, x.first) : value_less(x.first, y.first);
    if (!r.is_ok()) {
      if (error.is_ok()) error = r.status();
      return false;
    }
    return r.value();
  });
  LS_RETURN_IF_ERROR(error);
  std::vector<Value> out;
  for (auto& [_, item] : keyed) out.push_back(std::move(item));
  return Value::list(std::move(out));
}

Result<Value> reverse(Interpreter&, const Value& v, CallArgs& args) {
  if (!args.positional.empty() || !args.keyword.empty()) return invalid_argument("reverse() takes no arguments");
  if (v.is_string()) {
    std::u32string cps = utf8_to_u32(v.as_string());
    std::reverse(cps.begin(), cps.end());
    return Value::string(u32_to_utf8(cps));
  }
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterable_items(v));
  std::reverse(items.begin(), items.end());
  const bool was_iterator = v.is_list() && v.as_list().kind == ListKind::kIterator;
  return Value::list(std::move(items), was_iterator ? ListKind::kList : ListKind::kIterator);
}

Result<Value> dictsort(Interpreter& in, const Value& v, CallArgs& args) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"case_sensitive", "by", "reverse"}, "dictsort"));
  if (!v.is_dict() || v.as_dict().is_namespace) return invalid_argument("dictsort expects a mapping");
  const Value by = b.get_or(1, Value::string("key"));
  if (!by.is_string() || (by.as_string() != "key" && by.as_string() != "value"))
    return invalid_argument("You can only sort by either \"key\" or \"value\"");
  const size_t pos = by.as_string() == "key" ? 0 : 1;
  std::vector<Value> pairs;
  for (const auto& [k, val] : v.as_dict().entries) pairs.push_back(Value::list({k, val}, ListKind::kTuple));
  CallArgs sort_args;
  sort_args.keyword.emplace_back("reverse", b.get_or(2, Value::boolean(false)));
  sort_args.keyword.emplace_back("case_sensitive", b.get_or(0, Value::boolean(false)));
  sort_args.keyword.emplace_back("attribute", Value::integer(static_cast<int64_t>(pos)));
  return sort(in, Value::list(std::move(pairs)), sort_args);
}

Result<Value> batch(Interpreter& in, const Value& v, CallArgs& args) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"linecount", "fill_with"}, "batch"));
  if (!b.get(0).is_int() || b.get(0).as_int() <= 0) return invalid_argument("batch linecount must be a positive int");
  const auto n = static_cast<size_t>(b.get(0).as_int());
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterable_items(v));
  std::vector<Value> out;
  for (size_t i = 0; i < items.size(); i += n) {
    std::vector<Value> chunk(items.begin() + static_cast<std::ptrdiff_t>(i),
                             items.begin() + static_cast<std::ptrdiff_t>(std::min(items.size(), i + n)));
    if (chunk.size() < n && b.has(1) && !b.get(1).is_none()) {
      LS_RETURN_IF_ERROR(in.check_collection_size(n));
      chunk.resize(n, b.get(1));
    }
    out.push_back(Value::list(std::move(chunk)));
  }
  return iterator_of(std::move(out));
}

Result<Value> max(Interpreter& in, const Value& v, CallArgs& args) { return min_or_max(in, v, args, true); }
Result<Value> min(Interpreter& in, const Value& v, CallArgs& args) { return min_or_max(in, v, args, false); }

Result<Value> attr(Interpreter&, const Value& v, CallArgs& args) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"name"}, "attr"));
  if (!b.get(0).is_string()) return Value::undefined();
  const std::string name = b.get(0).as_string();
  if (std::optional<Value> m = bound_method(v, name)) return *m;
  if (v.is_dict() && v.as_dict().is_namespace) {
    if (const Value* x = v.as_dict().find(std::string_view(name))) return *x;
  }
  return Value::undefined();
}

}  // namespace ls::chat::filters
