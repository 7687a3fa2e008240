// Private to nfs41client/: helpers that more than one of its .cc files
// use. Not part of the library's API (that is client.h).
#pragma once

#include <cstring>

namespace nfs41client::internal {

template <typename T>
T Zero() {
  T v;
  std::memset(&v, 0, sizeof v);
  return v;
}

}  // namespace nfs41client::internal
