#pragma once

// Pieces the command-line tools share: credentials from --as, the database
// URI from --db or $NS_DB, and printing a URI without its password.

#include <optional>
#include <string>

#include "libnamespace/include/namespace/status.h"
#include "libnamespace/include/namespace/types.h"

namespace ns::tools {

// Parses "UID:GID[,GID...]" (numbers). Errors: Invalid.
Result<Credentials> ParseCredentials(const std::string& text);

// The --db value, or $NS_DB when the flag was not given. Errors: Invalid
// when neither is set.
Result<std::string> DatabaseUri(const std::string& flag);

// The URI with any password replaced by "***" (for messages and df).
std::string RedactUri(const std::string& uri);

}  // namespace ns::tools
