// Passes when fn throws qwen3::Error with a one-line message containing every part: the
// project's rule for bad input (STYLE.md, "Errors and validation").
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <string_view>

#include "base/error.h"

namespace qwen3 {

template <typename Fn>
testing::AssertionResult ThrowsError(Fn&& fn, std::initializer_list<std::string_view> parts) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.find('\n') != std::string::npos) {
      return testing::AssertionFailure() << "message is not one line: " << msg;
    }
    for (std::string_view part : parts) {
      if (msg.find(part) == std::string::npos) {
        return testing::AssertionFailure() << "no '" << part << "' in: " << msg;
      }
    }
    return testing::AssertionSuccess();
  }
  return testing::AssertionFailure() << "no qwen3::Error thrown";
}

}  // namespace qwen3
