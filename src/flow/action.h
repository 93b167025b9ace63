/* Flow actions: the action types this server runs, their validation (SPEC §4, the VoIPBIN Action
 * object) and variable substitution into their options. Any thread (no shared state). */
#ifndef CONFERENCED_ACTION_H
#define CONFERENCED_ACTION_H

#include <jansson.h>
#include <stddef.h>

#include "core/error.h"

enum action_type {
    ACTION_ANSWER = 0,
    ACTION_TALK,
    ACTION_PLAY,
    ACTION_SLEEP,
    ACTION_HANGUP,
    ACTION_DIGITS_RECEIVE,
    ACTION_BRANCH,
    ACTION_GOTO,
    ACTION_CONFERENCE_JOIN,
    ACTION_FETCH_FLOW,
    ACTION_RECORDING_START,
    ACTION_RECORDING_STOP,
    ACTION_TRANSCRIBE_START,
    ACTION_TRANSCRIBE_STOP,
    ACTION__COUNT
};

#define FLOW_MAX_ACTIONS 1000
#define ACTION_TEXT_MAX 4000      /* talk text */
#define ACTION_MAX_STREAM_URLS 16 /* play */
#define ACTION_SLEEP_MAX_MS 3600000
#define ACTION_DIGITS_MAX_MS 600000
#define ACTION_DIGITS_DEFAULT_MS 5000
#define ACTION_DIGITS_MAX_LEN 64
#define ACTION_GOTO_MAX_LOOPS 1000
#define ACTION_RECORDING_MAX_S 86400 /* recording_start's duration and end_of_silence */
/* The variable digits_receive fills and branch reads by default. */
#define VAR_DIGITS "voipbin.call.digits"

/* The type's name / the type of a name (-1 when this server does not run it). */
const char *action_type_name(enum action_type t);
int action_type_parse(const char *s, enum action_type *out);
/* "answer, talk, ..." for error messages. */
const char *action_type_list(void);

/* Validates a request's action array and returns its canonical form in *out (a new array: every
 * action as {"id","next_id","type","option"}, missing ids generated, option {} when absent).
 * Errors (400, reason INVALID_ACTION / INVALID_ACTION_TYPE) name the action by position and id.
 * An empty array is valid. */
int action_list_validate(json_t *actions, json_t **out, struct error *e);

/* The action's type (actions come from action_list_validate, so it is always known). */
enum action_type action_type_of(json_t *action);
/* The index of the action with this id in a canonical array, or -1. */
long action_find(json_t *actions, const char *id);

/* Replaces every ${name} in text with the string value of vars[name] ("" when unset; numbers and
 * booleans are written as JSON). The result is capped at 64 KiB. Caller frees. */
char *action_substitute(const char *text, json_t *vars);
/* A deep copy of option with every string substituted (caller decrefs). */
json_t *action_option_resolve(json_t *option, json_t *vars);

#endif
