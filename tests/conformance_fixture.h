#pragma once

// The conformance suite's fixture, shared by its files (conformance_*_test.cc)
// and instantiated once over the backends in conformance_test.cc.

#include <algorithm>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "libnamespace/include/namespace/pnfs.h"
#include "tests/test_util.h"

namespace ns::testing {

using ConformanceTest = DialectTest;

inline const Credentials kUser{1000, 1000, {2000}};
inline const Credentials kOther{1001, 1001, {}};

}  // namespace ns::testing
