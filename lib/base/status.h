// Status helpers. Debian's Abseil 20220623 has absl::Status but no status
// macros, so Shoal keeps its own two, here and nowhere else.
//
// Control paths return absl::Status / absl::StatusOr; data paths return
// counts and small enums (see ARCHITECTURE rule 7).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SHOAL_STATUS_CONCAT_INNER_(a, b) a##b
#define SHOAL_STATUS_CONCAT_(a, b) SHOAL_STATUS_CONCAT_INNER_(a, b)

// Returns from the current function if `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    ::absl::Status shoal_status_ = (expr);           \
    if (!shoal_status_.ok()) return shoal_status_;   \
  } while (0)

// `lhs` = the value of `expr` (an absl::StatusOr<T>), or returns its status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(SHOAL_STATUS_CONCAT_(shoal_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()
