#include "libnamespace/include/namespace/types.h"

#include <algorithm>

namespace ns {

bool Credentials::InGroup(uint32_t g) const {
  return g == gid || std::find(groups.begin(), groups.end(), g) != groups.end();
}

char FileTypeLetter(FileType t) {
  switch (t) {
    case FileType::kRegular: return '-';
    case FileType::kDirectory: return 'd';
    case FileType::kSymlink: return 'l';
    case FileType::kBlockDevice: return 'b';
    case FileType::kCharDevice: return 'c';
    case FileType::kFifo: return 'p';
    case FileType::kSocket: return 's';
  }
  return '?';
}

}  // namespace ns
