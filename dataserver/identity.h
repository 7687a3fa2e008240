#pragma once

// What a data server reads from its data directory at start: the key it
// shares with the MDS and its identity (docs/pnfs.md).

#include <optional>
#include <string>

#include "pnfs/auth.h"

namespace dataserver {

// Reads the pNFS key (exactly pnfs::kKeyBytes bytes) from `path`. Unlike
// the MDS, a data server never creates it: the operator copies the MDS's
// key there. nullopt with a message naming the file on any problem.
std::optional<pnfs::Key> LoadKey(const std::string& path, std::string* error);

// The data server's uuid, as text ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"),
// from <data_dir>/ds.uuid, created (random, written atomically and fsynced)
// on first start so that a restarted data server is the same one. nullopt
// with a message if it cannot be read or written.
std::optional<std::string> LoadOrCreateUuid(const std::string& data_dir,
                                            std::string* error);

}  // namespace dataserver
