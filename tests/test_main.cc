// main() of every test binary in tests/: gtest plus the environment that
// owns the binary's PostgreSQL cluster and scratch directory.

#include <gtest/gtest.h>

#include "tests/test_util.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new ns::testing::TestEnvironment);
  return RUN_ALL_TESTS();
}
