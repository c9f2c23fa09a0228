// Mounting agent.proto Storage entries in the guest.
#pragma once
#include <string>
#include <vector>

#include "messages.h"

// Validates and mounts s (creating its mount point). false + err (already user-facing) on failure;
// err_code is a google.rpc.Code (INVALID_ARGUMENT for a bad description, INTERNAL for a failed mount).
bool mount_storage(const msg::Storage& s, std::string& err, int& err_code);
// Lazily unmounts mount points in reverse order; failures are logged.
void unmount_all(const std::vector<std::string>& mount_points);
