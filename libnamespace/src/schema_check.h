#pragma once

// Schema checks shared by Namespace::Open and the admin functions.

#include <memory>
#include <string>

#include "libnamespace/src/backend.h"

namespace ns {

// SchemaTooNew if `version` is beyond what this build knows.
Status CheckNotTooNew(const std::string& uri, int version);

// Opens the backend for `uri` and makes sure its schema is the one this build
// speaks: creates it in an empty database when options.create_if_missing,
// refuses an older one (SchemaTooOld, "run nsadmin upgrade") unless
// !options.require_current_schema, refuses a newer one. Starts the backend.
Result<std::unique_ptr<Backend>> OpenAtCurrentSchema(
    const std::string& uri, const NamespaceOptions& options);

}  // namespace ns
