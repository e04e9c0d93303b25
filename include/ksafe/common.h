/*
 * ksafe/common.h - export macro, version and shared scalar types.
 *
 * Copyright (c) 2026 the ksafe authors. MIT licensed, see LICENSE.
 */
#ifndef KSAFE_COMMON_H
#define KSAFE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define KSAFE_VERSION_MAJOR 0
#define KSAFE_VERSION_MINOR 1
#define KSAFE_VERSION_PATCH 0
#define KSAFE_VERSION_STRING "0.1.0"

/* KSAFE_EXTERN marks the public API; everything else in the shared library
 * is hidden (built with -fvisibility=hidden). */
#if defined(_WIN32) && defined(KSAFE_BUILDING)
#define KSAFE_EXTERN __declspec(dllexport)
#elif defined(__GNUC__) && defined(KSAFE_BUILDING)
#define KSAFE_EXTERN __attribute__((visibility("default")))
#else
#define KSAFE_EXTERN
#endif

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
