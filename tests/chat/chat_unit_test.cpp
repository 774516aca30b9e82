// chat_unit_test.cpp: unit tests of the template interpreter (filled in below).
#include <gtest/gtest.h>

#include "chat/template.h"

namespace ls::chat {
namespace {

TEST(ChatUnit, Placeholder) { SUCCEED(); }

}  // namespace
}  // namespace ls::chat
