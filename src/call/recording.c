/* What recordings ask of calls: is the call up, and the recording running on it (the calls'
 * recording_id / recording_ids columns). */
#include "call/internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"

bool call_is_progressing(struct call_mgr *m, const char *call_id)
{
    struct live_call *lc = idmap_get(&m->live, call_id);
    return lc && lc->status == CALL_PROGRESSING && !lc->hanging_up && lc->leg;
}

int call_set_recording(struct call_mgr *m, const char *call_id, const char *recording_id)
{
    struct call c;
    if (store_call_get(m->d.store, NULL, call_id, &c) != 0)
        return -1;
    char *ids = NULL;
    if (!id_is_nil(recording_id)) {
        json_t *arr = c.recording_ids ? json_loads(c.recording_ids, 0, NULL) : NULL;
        if (!json_is_array(arr)) {
            json_decref(arr);
            arr = json_array();
        }
        json_array_append_new(arr, json_string(recording_id));
        ids = json_dumps(arr, JSON_COMPACT);
        json_decref(arr);
    }
    int rc = store_call_set_recording(m->d.store, call_id, recording_id,
                                      ids ? ids : c.recording_ids, tm_now_us());
    free(ids);
    call_fini(&c);
    if (rc != 0)
        return -1;
    if (store_call_get(m->d.store, NULL, call_id, &c) == 0) {
        call_publish(m, "call_updated", &c);
        call_fini(&c);
    }
    return 0;
}
