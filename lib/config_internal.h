/*
 * lib/config_internal.h - what config.c (the schema and the loader) and
 * config_text.c (positions, paths and messages in the JSON text) share.
 */
#ifndef KSAFE_CONFIG_INTERNAL_H
#define KSAFE_CONFIG_INTERNAL_H

#include <stddef.h>

#include <jansson.h>

#include "internal.h"

/* Short names inside the two files; exported names carry the prefix. */
#define is_secret_name ksafe__cfg_is_secret_name
#define buf_add ksafe__cfg_buf_add
#define add_quoted ksafe__cfg_add_quoted
#define add_path_key ksafe__cfg_add_path_key
#define line_col ksafe__cfg_line_col
#define sc_find ksafe__cfg_find
#define report ksafe__cfg_report
#define syntax_error ksafe__cfg_syntax_error

/* 1 when values of `key` must never be shown in a message. */
int is_secret_name(const char *key);

/* Appends at most n bytes of s; the buffer always stays NUL-terminated. */
void buf_add(char *buf, size_t size, size_t *len, const char *s, size_t n);

/* A string for a message: quoted, escaped, shortened past `max`. */
void add_quoted(char *buf, size_t size, size_t *len, const char *s,
                size_t max);

/* One JSON path step: .name for plain names, ["any.thing"] otherwise. */
void add_path_key(char *buf, size_t size, size_t *len, const char *key);

/* Line and column (both from 1, columns in characters) of byte `off`. */
void line_col(const char *s, size_t len, size_t off, int *line, int *col);

/* Finds the object path keys[0..n) in the text: 0 and the byte offsets of
 * the last key and of its value, or -1 when the text does not hold it. */
int sc_find(const char *s, size_t len, const char *const *keys, size_t n,
            size_t *key_off, size_t *value_off);

/* Fills `err` with "[origin: ]path: detail (line L, column C)" and
 * returns KSAFE_EJSON; the location survives any truncation. */
int report(ksafe_error *err, const char *origin, const char *path,
           const char *detail, int line, int col);

/* For a document jansson refused: its message, located, with the path. */
int syntax_error(const char *text, size_t len, const char *origin,
                 const json_error_t *je, ksafe_error *err);

#endif
