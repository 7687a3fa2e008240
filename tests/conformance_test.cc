// The Namespace conformance suite: POSIX semantics of every operation, the
// same tests against SQLite and PostgreSQL (issue 2, items 4 and 5).
//
// The tests live in conformance_{attrs,names,times_paths,readdir,inline}_test.cc,
// linked into this one binary in that order; the fixture is in conformance_fixture.h.

#include "tests/conformance_fixture.h"

namespace ns::testing {
namespace {

INSTANTIATE_TEST_SUITE_P(Backends, ConformanceTest, ::testing::ValuesIn(DialectsWithPartitions()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace ns::testing
