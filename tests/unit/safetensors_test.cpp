// safetensors_test.cpp: the safetensors reader on valid files and on truncated, oversized-header, wrong-dtype,
// overlapping-span, lying-shape and otherwise hostile files; each must give a clear error, never a crash.
#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "support/test_files.h"

namespace ls {
namespace {

using testing::raw_safetensors;
using testing::TempDir;

Result<SafetensorsFile> parse_bytes(const std::vector<uint8_t>& bytes) {
  return SafetensorsFile::parse(nullptr, bytes.data(), bytes.size(), "test.safetensors");
}

void expect_error(const std::vector<uint8_t>& bytes, ErrorCode code, const std::string& fragment) {
  auto r = parse_bytes(bytes);
  ASSERT_FALSE(r.is_ok()) << "expected an error containing \"" << fragment << "\"";
  EXPECT_EQ(r.status().code(), code) << r.status().to_string();
  EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().to_string();
}

std::vector<uint8_t> bytes_of(size_t n) { return std::vector<uint8_t>(n, 0x3f); }

TEST(Safetensors, ReadsValidFileZeroCopy) {
  TempDir dir;
  auto bytes = testing::safetensors_bytes({testing::f32_tensor("a", {2, 3}, 1.5f), testing::f32_tensor("b", {4}, -2.0f)});
  testing::write_bytes(dir.file("m.safetensors"), bytes);
  auto file = SafetensorsFile::open(dir.file("m.safetensors"));
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  const TensorView* a = file->find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a->to_f32(), std::vector<float>(6, 1.5f));
  EXPECT_EQ(file->find("b")->to_f32(), std::vector<float>(4, -2.0f));
  EXPECT_EQ(file->metadata().at("format"), "pt");
}

TEST(Safetensors, AcceptsEmptyAndScalarTensors) {
  auto r = parse_bytes(raw_safetensors(
      R"({"e":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]},"s":{"dtype":"I64","shape":[],"data_offsets":[0,8]}})",
      bytes_of(8)));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->find("s")->num_bytes, 8u);
}

TEST(Safetensors, RejectsTruncatedFiles) {
  expect_error({1, 2, 3}, ErrorCode::kCorrupt, "shorter than the 8-byte header length");
  auto good = testing::safetensors_bytes({testing::f32_tensor("a", {8}, 1.0f)});
  auto truncated = good;
  truncated.resize(good.size() - 4);
  expect_error(truncated, ErrorCode::kCorrupt, "past the end of the file");
  truncated.resize(20);
  expect_error(truncated, ErrorCode::kCorrupt, "runs past the end of the file");
}

TEST(Safetensors, RejectsOversizedHeader) {
  expect_error(raw_safetensors("{}", {}, 200'000'000), ErrorCode::kCorrupt, "exceeds the 100 MB limit");
  expect_error(raw_safetensors("{}", {}, UINT64_MAX - 1), ErrorCode::kCorrupt, "exceeds the 100 MB limit");
}

TEST(Safetensors, RejectsBadJson) {
  expect_error(raw_safetensors("{\"a\": ", {}), ErrorCode::kCorrupt, "not valid JSON");
  expect_error(raw_safetensors("[1,2]", {}), ErrorCode::kCorrupt, "not a JSON object");
  expect_error(raw_safetensors(R"({"a": 5})", {}), ErrorCode::kCorrupt, "not an object");
}

TEST(Safetensors, RejectsUnknownDtype) {
  expect_error(raw_safetensors(R"({"a":{"dtype":"F4X","shape":[1],"data_offsets":[0,1]}})", bytes_of(1)),
               ErrorCode::kUnsupported, "unknown dtype \"F4X\"");
  expect_error(raw_safetensors(R"({"a":{"dtype":7,"shape":[1],"data_offsets":[0,1]}})", bytes_of(1)),
               ErrorCode::kInvalidArgument, "\"dtype\" must be a string");
}

TEST(Safetensors, RejectsLyingShape) {
  // 2x3 F32 is 24 bytes but the span claims 20.
  expect_error(raw_safetensors(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", bytes_of(20)),
               ErrorCode::kCorrupt, "does not match data_offsets span");
  expect_error(raw_safetensors(R"({"a":{"dtype":"F32","shape":[-2,3],"data_offsets":[0,24]}})", bytes_of(24)),
               ErrorCode::kCorrupt, "non-negative integers");
  // A shape whose byte count overflows 64 bits must not wrap around to match.
  expect_error(raw_safetensors(
                   R"({"a":{"dtype":"F32","shape":[1099511627776,1099511627776,16],"data_offsets":[0,0]}})", {}),
               ErrorCode::kCorrupt, "");
}

TEST(Safetensors, RejectsOverlappingAndGappedSpans) {
  expect_error(raw_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                               bytes_of(12)),
               ErrorCode::kCorrupt, "overlaps");
  expect_error(raw_safetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", bytes_of(8)),
               ErrorCode::kCorrupt, "gap");
  expect_error(raw_safetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", bytes_of(12)),
               ErrorCode::kCorrupt, "tensors cover 4");
  expect_error(raw_safetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", bytes_of(8)),
               ErrorCode::kCorrupt, "end < begin");
}

TEST(Safetensors, RejectsDuplicateNamesAndBadMetadata) {
  expect_error(raw_safetensors(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                               R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                               bytes_of(2)),
               ErrorCode::kCorrupt, "duplicate tensor name \"a\"");
  expect_error(raw_safetensors(R"({"__metadata__":{"format":3}})", {}), ErrorCode::kCorrupt, "not a string");
}

TEST(Safetensors, MissingFileIsNotFound) {
  auto r = SafetensorsFile::open("/nonexistent/dir/x.safetensors");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
}

TEST(WeightFiles, ReadsShardedCheckpointThroughIndex) {
  TempDir dir;
  testing::write_bytes(dir.file("model-00001-of-00002.safetensors"),
                       testing::safetensors_bytes({testing::f32_tensor("x", {2}, 1.0f)}));
  testing::write_bytes(dir.file("model-00002-of-00002.safetensors"),
                       testing::safetensors_bytes({testing::f32_tensor("y", {3}, 2.0f)}));
  testing::write_text(dir.file("model.safetensors.index.json"),
                      R"({"metadata":{"total_size":20},"weight_map":{"x":"model-00001-of-00002.safetensors",)"
                      R"("y":"model-00002-of-00002.safetensors"}})");
  auto w = WeightFiles::open_model_dir(dir.path());
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  EXPECT_EQ(w->find("y")->to_f32(), std::vector<float>(3, 2.0f));
  EXPECT_EQ(w->tensors().size(), 2u);
}

TEST(WeightFiles, RejectsHostileShardNamesAndDuplicates) {
  TempDir dir;
  testing::write_text(dir.file("model.safetensors.index.json"), R"({"weight_map":{"x":"../../etc/passwd"}})");
  auto w = WeightFiles::open_model_dir(dir.path());
  ASSERT_FALSE(w.is_ok());
  EXPECT_NE(w.status().message().find("plain file name"), std::string::npos);

  TempDir dup;
  testing::write_bytes(dup.file("a.safetensors"), testing::safetensors_bytes({testing::f32_tensor("x", {2}, 1.0f)}));
  testing::write_bytes(dup.file("b.safetensors"), testing::safetensors_bytes({testing::f32_tensor("x", {2}, 1.0f)}));
  testing::write_text(dup.file("model.safetensors.index.json"),
                      R"({"weight_map":{"x":"a.safetensors","z":"b.safetensors"}})");
  auto d = WeightFiles::open_model_dir(dup.path());
  ASSERT_FALSE(d.is_ok());
  EXPECT_NE(d.status().message().find("more than one shard"), std::string::npos);

  TempDir empty;
  EXPECT_EQ(WeightFiles::open_model_dir(empty.path()).status().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace ls
