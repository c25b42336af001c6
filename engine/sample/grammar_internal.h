/* grammar_internal.h: the byte-level grammar shared by the schema compiler
 * (grammar_schema.c) and the matcher (grammar.c). Not a public header.
 * Layer: engine/sample (pure C11).
 * A grammar is a list of rules; a rule is alternatives of element sequences,
 * stored flat in one array: alt ... GE_ALT alt ... GE_END (llama.cpp's GBNF
 * layout, our own code). */
#ifndef MH_GRAMMAR_INTERNAL_H
#define MH_GRAMMAR_INTERNAL_H

#include <stdint.h>
#include <stdbool.h>
#include "mh/err.h"

enum {
    GE_END = 0,    /* end of the rule's last alternative */
    GE_ALT,        /* end of an alternative, another follows */
    GE_REF,        /* arg: rule id */
    GE_SET,        /* arg: byte-set id; matches one byte */
    GE_STRCHAR,    /* one JSON string character: UTF-8 sequence or escape */
    GE_STRLOOP,    /* zero or more JSON string characters */
    GE_WS,         /* arg: 0..arg whitespace bytes (space, \t, \n, \r) */
    GE_STRN,       /* arg: 0..arg JSON string characters */
};

typedef struct gr_el { int32_t kind, arg; } gr_el;
typedef struct gr_set { uint64_t w[4]; } gr_set;

typedef struct gr_rules {
    gr_el *el;          /* (n_el) every rule's body */
    int32_t n_el, cap_el;
    int32_t *start;     /* (n_rules) offset of each rule in el, -1 until defined */
    int32_t n_rules, cap_rules;
    gr_set *sets;       /* (n_sets) byte sets, deduplicated */
    int32_t n_sets, cap_sets;
    bool oom;           /* an allocation failed; checked once at the end */
} gr_rules;

/* A rule body being built: alternatives separated by GE_ALT. */
typedef struct gr_body { gr_el *el; int32_t n, cap; gr_rules *r; } gr_body;

void gr_rules_free(gr_rules *r);
int32_t gr_rule_new(gr_rules *r);                  /* declared, defined later */
void gr_rule_define(gr_rules *r, int32_t id, gr_body *b);   /* consumes b */
int32_t gr_set_id(gr_rules *r, const gr_set *s);

void gr_body_init(gr_body *b, gr_rules *r);
void gr_body_add(gr_body *b, int32_t kind, int32_t arg);
void gr_body_byte(gr_body *b, unsigned char c);                 /* one exact byte */
void gr_body_range(gr_body *b, unsigned char lo, unsigned char hi);
void gr_body_lit(gr_body *b, const char *s, size_t n);          /* exact bytes */
void gr_body_alt(gr_body *b);                                   /* next alternative */
/* A new rule whose single alternative is b / whose body is b. */
int32_t gr_rule_from(gr_rules *r, gr_body *b);

/* Compiles schema_json into r; returns the root rule (a full document:
 * whitespace, value, whitespace) or -1 with err. any_object: ignore the
 * schema and accept any JSON object. */
int32_t gr_compile_json(gr_rules *r, const char *schema_json, bool any_object, mh_err *err);

#endif
