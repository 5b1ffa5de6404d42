/* stats.c - see stats.h. */
#include "stats.h"

#include <string.h>

const struct stats_desc stats_descs[] = {
#define STATS_DESC(field, metric, labels, help) {#field, metric, labels, help, offsetof(struct stats, field)},
    STATS_COUNTERS(STATS_DESC)
#undef STATS_DESC
};
const size_t stats_ndescs = sizeof stats_descs / sizeof stats_descs[0];

void stats_count_lost(struct stats *st, const char *reason)
{
    st->lost++;
    if (strcmp(reason, "NOQUORUM") == 0) st->lost_noquorum++;
    else if (strcmp(reason, "TAKEN") == 0) st->lost_taken++;
    else if (strcmp(reason, "PREEMPTED") == 0) st->lost_preempted++;
    else if (strcmp(reason, "MAXHOLD") == 0) st->lost_maxhold++;
    else if (strcmp(reason, "SHUTDOWN") == 0) st->lost_shutdown++;
}
