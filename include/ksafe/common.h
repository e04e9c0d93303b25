/**
 * @file
 * ksafe/common.h - export macro, version and shared scalar types.
 *
 * Copyright (c) 2026 the ksafe authors. MIT licensed, see LICENSE.
 */
#ifndef KSAFE_COMMON_H
#define KSAFE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define KSAFE_VERSION_MAJOR 0 /**< major version of these headers */
#define KSAFE_VERSION_MINOR 1 /**< minor version of these headers */
#define KSAFE_VERSION_PATCH 0 /**< patch version of these headers */
/** The headers' version as a string; ksafe_version() names the library's. */
#define KSAFE_VERSION_STRING "0.1.0"

/**
 * @def KSAFE_EXTERN
 * Marks the public API; everything else in the shared library is hidden
 * (built with -fvisibility=hidden). Not for use in your code.
 */
#if defined(_WIN32) && defined(KSAFE_BUILDING)
#define KSAFE_EXTERN __declspec(dllexport)
#elif defined(__GNUC__) && defined(KSAFE_BUILDING)
#define KSAFE_EXTERN __attribute__((visibility("default")))
#else
#define KSAFE_EXTERN
#endif

/**
 * @def KSAFE_BEGIN_DECLS
 * Opens the headers' declarations: `extern "C" {` in C++, nothing in C.
 * @def KSAFE_END_DECLS
 * Closes what KSAFE_BEGIN_DECLS opened.
 */
#ifdef __cplusplus
#define KSAFE_BEGIN_DECLS extern "C" {
#define KSAFE_END_DECLS }
#else
#define KSAFE_BEGIN_DECLS
#define KSAFE_END_DECLS
#endif

KSAFE_BEGIN_DECLS

/** The library's version string, e.g. "0.1.0". */
KSAFE_EXTERN const char *ksafe_version(void);

/** librdkafka's version string as linked at run time, e.g. "2.0.2". */
KSAFE_EXTERN const char *ksafe_rdkafka_version(void);

KSAFE_END_DECLS

#endif
