// safetensors.cpp: header validation for safetensors files and sharded checkpoints.
#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <unordered_set>

#include "core/json.h"

namespace ls {

int64_t TensorView::num_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorView::shape_string() const {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

std::vector<float> TensorView::to_f32() const {
  std::vector<float> out(static_cast<size_t>(num_elements()));
  convert_to_f32(data, dtype, out.size(), out.data());
  return out;
}

namespace {

struct Entry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

Result<Entry> parse_entry(const std::string& name, const Json& value) {
  if (!value.is_object()) return corrupt("tensor \"" + name + "\": header entry is not an object");
  LS_ASSIGN_OR_RETURN(std::string dtype_str, required_string(value, "dtype"));
  auto dtype = dtype_from_name(dtype_str);
  if (!dtype) return unsupported("tensor \"" + name + "\": unknown dtype \"" + dtype_str + "\"");
  const Json* shape = find_field(value, "shape");
  const Json* offsets = find_field(value, "data_offsets");
  if (!shape || !shape->is_array()) return corrupt("tensor \"" + name + "\": \"shape\" must be an array");
  if (!offsets || !offsets->is_array() || offsets->size() != 2)
    return corrupt("tensor \"" + name + "\": \"data_offsets\" must be [begin, end]");
  Entry e{name, *dtype, {}, 0, 0};
  // Overflow-safe element count: stop once it exceeds any possible file.
  unsigned __int128 bytes = dtype_size(*dtype);
  for (const Json& d : *shape) {
    if (!d.is_number_unsigned()) return corrupt("tensor \"" + name + "\": shape entries must be non-negative integers");
    const uint64_t dim = d.get<uint64_t>();
    if (dim > (1ull << 40)) return corrupt("tensor \"" + name + "\": dimension too large");
    e.shape.push_back(static_cast<int64_t>(dim));
    bytes *= dim;
    if (bytes > (static_cast<unsigned __int128>(1) << 62)) return corrupt("tensor \"" + name + "\": size overflows");
  }
  for (const Json& o : *offsets)
    if (!o.is_number_unsigned()) return corrupt("tensor \"" + name + "\": data_offsets must be non-negative integers");
  e.begin = (*offsets)[0].get<uint64_t>();
  e.end = (*offsets)[1].get<uint64_t>();
  if (e.end < e.begin) return corrupt("tensor \"" + name + "\": data_offsets end < begin");
  if (e.end - e.begin != static_cast<uint64_t>(bytes))
    return corrupt("tensor \"" + name + "\": shape " + std::to_string(static_cast<uint64_t>(bytes)) +
                   " bytes does not match data_offsets span " + std::to_string(e.end - e.begin));
  return e;
}

Status parse_metadata(const Json& value, std::map<std::string, std::string>& out) {
  if (!value.is_object()) return corrupt("\"__metadata__\" must be an object of strings");
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (!it.value().is_string()) return corrupt("\"__metadata__\" value of \"" + it.key() + "\" is not a string");
    out[it.key()] = it.value().get<std::string>();
  }
  return Status::ok();
}

// Spans sorted by offset must tile the buffer exactly: no gaps, no overlaps, nothing past the end.
Status check_spans(std::vector<Entry>& entries, uint64_t buffer_size) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected = 0;
  for (const Entry& e : entries) {
    if (e.begin < expected) return corrupt("tensor \"" + e.name + "\" overlaps the previous tensor's bytes");
    if (e.begin > expected) return corrupt("gap in the byte buffer before tensor \"" + e.name + "\"");
    if (e.end > buffer_size)
      return corrupt("tensor \"" + e.name + "\" extends past the end of the file (truncated file?)");
    expected = e.end;
  }
  if (expected != buffer_size)
    return corrupt("byte buffer is " + std::to_string(buffer_size) + " bytes but tensors cover " +
                   std::to_string(expected));
  return Status::ok();
}

// Parses the header, refusing duplicate top-level keys (nlohmann would silently keep the last one).
Result<Json> parse_header_json(std::string_view text) {
  std::string duplicate;
  std::unordered_set<std::string> seen;
  auto on_event = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (depth == 1 && event == Json::parse_event_t::key && parsed.is_string()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!seen.insert(key).second) duplicate = key;
    }
    return true;
  };
  try {
    Json header = Json::parse(text.begin(), text.end(), on_event);
    if (!duplicate.empty()) return corrupt("duplicate tensor name \"" + duplicate + "\" in header");
    return header;
  } catch (const Json::exception& e) {
    return corrupt(std::string("header is not valid JSON: ") + e.what());
  }
}

}  // namespace

Result<SafetensorsFile> SafetensorsFile::parse(std::shared_ptr<const MappedFile> owner, const unsigned char* data,
                                               size_t size, const std::string& name) {
  auto fail = [&](const Status& s) { return s.with_context(name); };
  if (size < 8) return fail(corrupt("file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length"));
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
  if (header_len > kMaxSafetensorsHeaderBytes)
    return fail(corrupt("header length " + std::to_string(header_len) + " exceeds the 100 MB limit"));
  if (header_len > size - 8)
    return fail(corrupt("header length " + std::to_string(header_len) + " runs past the end of the file (truncated?)"));
  auto parsed = parse_header_json(std::string_view(reinterpret_cast<const char*>(data + 8), header_len));
  if (!parsed.is_ok()) return fail(parsed.status());
  const Json& header = parsed.value();
  if (!header.is_object()) return fail(corrupt("header is not a JSON object"));

  SafetensorsFile file;
  file.path_ = name;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (Status s = parse_metadata(it.value(), file.metadata_); !s.is_ok()) return fail(s);
      continue;
    }
    auto entry = parse_entry(it.key(), it.value());
    if (!entry.is_ok()) return fail(entry.status());
    entries.push_back(std::move(entry).value());
  }
  const uint64_t buffer_size = size - 8 - header_len;
  if (Status s = check_spans(entries, buffer_size); !s.is_ok()) return fail(s);

  const unsigned char* buffer = data + 8 + header_len;
  for (Entry& e : entries) {
    TensorView v;
    v.name = e.name;
    v.dtype = e.dtype;
    v.shape = std::move(e.shape);
    v.data = buffer + e.begin;
    v.num_bytes = e.end - e.begin;
    v.owner = owner;
    file.tensors_.emplace(e.name, std::move(v));
  }
  return file;
}

Result<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  LS_ASSIGN_OR_RETURN(auto mapped, MappedFile::open(path));
  return parse(mapped, mapped->data(), mapped->size(), path);
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

namespace {

Result<std::vector<std::string>> shard_names_from_index(const std::string& index_path) {
  LS_ASSIGN_OR_RETURN(Json index, read_json_file(index_path));
  const Json* map = find_field(index, "weight_map");
  if (!map || !map->is_object()) return corrupt(index_path + ": missing \"weight_map\" object");
  std::vector<std::string> shards;
  for (auto it = map->begin(); it != map->end(); ++it) {
    if (!it.value().is_string()) return corrupt(index_path + ": weight_map value of \"" + it.key() + "\" is not a string");
    std::string shard = it.value().get<std::string>();
    if (shard.empty() || shard.find('/') != std::string::npos || shard.find("..") != std::string::npos)
      return corrupt(index_path + ": shard name \"" + shard + "\" must be a plain file name");
    if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
  }
  if (shards.empty()) return corrupt(index_path + ": weight_map is empty");
  return shards;
}

}  // namespace

Result<WeightFiles> WeightFiles::open_model_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> names;
  const std::string index_path = dir + "/model.safetensors.index.json";
  std::error_code ec;
  if (fs::exists(dir + "/model.safetensors", ec)) {
    names.push_back("model.safetensors");
  } else if (fs::exists(index_path, ec)) {
    LS_ASSIGN_OR_RETURN(names, shard_names_from_index(index_path));
  } else if (fs::exists(dir + "/pytorch_model.bin", ec)) {
    return unsupported(dir + ": only PyTorch .bin weights found; convert them to safetensors");
  } else {
    return not_found(dir + ": no model.safetensors or model.safetensors.index.json");
  }
  WeightFiles weights;
  for (const std::string& name : names) {
    LS_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::open(dir + "/" + name));
    for (const auto& [tensor_name, view] : file.tensors()) {
      if (!weights.tensors_.emplace(tensor_name, view).second)
        return corrupt(dir + ": tensor \"" + tensor_name + "\" appears in more than one shard");
    }
    weights.files_.push_back(std::move(file));
  }
  return weights;
}

const TensorView* WeightFiles::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

}  // namespace ls
