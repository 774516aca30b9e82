// filters.cpp: the filter registry (jinja2's builtin filters that chat templates use, plus transformers' tojson).
#include "chat/filters_impl.h"

namespace ls::chat {

namespace {

struct FilterEntry {
  const char* name;
  filters::FilterFn fn;
};

const FilterEntry kFilters[] = {
    {"trim", filters::trim},         {"upper", filters::upper},
    {"lower", filters::lower},       {"capitalize", filters::capitalize},
    {"title", filters::title},       {"replace", filters::replace},
    {"indent", filters::indent},     {"center", filters::center},
    {"wordcount", filters::wordcount}, {"string", filters::string},
    {"safe", filters::safe},         {"e", filters::escape},
    {"escape", filters::escape},     {"forceescape", filters::forceescape},
    {"format", filters::format},     {"tojson", filters::tojson},
    {"int", filters::to_int},        {"float", filters::to_float},
    {"abs", filters::abs},           {"round", filters::round},
    {"length", filters::length},     {"count", filters::length},
    {"first", filters::first},       {"last", filters::last},
    {"join", filters::join},         {"default", filters::default_value},
    {"d", filters::default_value},   {"items", filters::items},
    {"list", filters::list},         {"selectattr", filters::selectattr},
    {"rejectattr", filters::rejectattr}, {"select", filters::select},
    {"reject", filters::reject},     {"map", filters::map},
    {"sum", filters::sum},           {"unique", filters::unique},
    {"sort", filters::sort},         {"reverse", filters::reverse},
    {"dictsort", filters::dictsort}, {"batch", filters::batch},
    {"max", filters::max},           {"min", filters::min},
    {"attr", filters::attr},
};

}  // namespace

bool has_filter(const std::string& name) {
  for (const FilterEntry& f : kFilters)
    if (name == f.name) return true;
  return false;
}

Result<Value> call_filter(Interpreter& in, const std::string& name, Value input, CallArgs& args) {
  LS_RETURN_IF_ERROR(in.tick());
  for (const FilterEntry& f : kFilters)
    if (name == f.name) return f.fn(in, input, args);
  return invalid_argument("no filter named '" + name + "'");
}

}  // namespace ls::chat
