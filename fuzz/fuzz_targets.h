// The fuzz targets' entry functions, one per input surface. Each takes arbitrary bytes, must
// never crash, hang, leak or hit UB, and aborts (via FuzzCheck) when a property it checks
// fails; a rejected input is a qwen3::Error (or ApiException), caught inside. They are plain
// functions so that libFuzzer (fuzz/fuzz_main.cc, one binary per target, clang) and the
// GoogleTest replay of fuzz/corpus/ and fuzz/regressions/ (tests/fuzz_regression_test.cc, g++)
// run the same code. See docs/RELIABILITY.md.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qwen3::fuzz {

int FuzzSafetensors(const uint8_t* data, size_t size);      // safetensors_fuzz.cc
int FuzzGguf(const uint8_t* data, size_t size);             // gguf_fuzz.cc
int FuzzConfig(const uint8_t* data, size_t size);           // config_fuzz.cc
int FuzzTokenizerLoad(const uint8_t* data, size_t size);    // tokenizer_load_fuzz.cc
int FuzzTokenizerEncode(const uint8_t* data, size_t size);  // tokenizer_encode_fuzz.cc
int FuzzChatTemplate(const uint8_t* data, size_t size);     // chat_template_fuzz.cc
int FuzzOpenaiRequest(const uint8_t* data, size_t size);    // openai_request_fuzz.cc
int FuzzStream(const uint8_t* data, size_t size);           // stream_fuzz.cc

}  // namespace qwen3::fuzz
