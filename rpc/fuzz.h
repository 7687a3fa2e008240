#pragma once

// A fuzz entry point for everything the rpc library does with bytes read from
// a socket, without the socket: record marking (fragments split at arbitrary
// points, oversize and truncated records), then per record what a connection
// does -- a REPLY is decoded as the reply to an outgoing call, a CALL goes
// through ProcessCall (header decoding, authentication, program lookup) into
// a toy program whose handlers decode arguments with XDR.
//
// It must never crash, hang or leak, whatever the input. The unit test
// rpc/fuzz_test.cc runs it on a bounded number of random and mutated inputs;
// a libFuzzer or AFL harness only needs to call it:
//
//   extern "C" int LLVMFuzzerTestOneInput(const uint8_t* d, size_t n) {
//     rpc::FuzzServerInput({d, n});
//     return 0;
//   }

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace rpc {

// The toy program the fuzz registry serves; valid calls to it are good seeds.
inline constexpr uint32_t kFuzzProgram = 0x20000f00;

// Processes `data` as a server would; returns the number of records
// completed (for tests).
size_t FuzzServerInput(std::span<const uint8_t> data);

// A well-formed record-marked CALL to the toy program (procedure `proc`,
// AUTH_SYS), split into fragments of `fragment` bytes: a seed for mutation.
std::vector<uint8_t> FuzzSeedCall(uint32_t proc, uint32_t fragment);

}  // namespace rpc
