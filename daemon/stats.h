/*
 * stats.h - the daemon's counters, listed once.
 *
 * STATS_COUNTERS is the one list: it declares struct stats, and INFO and
 * /metrics both walk it, so a counter cannot be in one and missing from the
 * other. Each entry is X(field, metric, labels, help):
 *   field   the struct member, and its INFO key;
 *   metric  /metrics name without the redlockd_ prefix and _total suffix
 *           ("": INFO only);
 *           entries of one metric are adjacent and differ by their labels;
 *   labels  "" or the Prometheus labels of this entry (result="ok");
 *   help    the metric's HELP text (read from its first entry).
 * The INFO key "lost" (every EVENT LOST) has no metric of its own: /metrics
 * has lost_total by reason, whose sum it is.
 */
#ifndef REDLOCKD_STATS_H
#define REDLOCKD_STATS_H

#include <stddef.h>
#include <stdint.h>

#define STATS_COUNTERS(X) \
    X(connections_total, "connections", "", "Client connections accepted.") \
    X(connections_rejected, "connections_rejected", "", "Connections refused at max_clients.") \
    X(requests, "requests", "", "Request lines handled.") \
    X(acquire_ok, "acquire", "result=\"ok\"", "ACQUIREs answered, by result.") \
    X(acquire_busy, "acquire", "result=\"busy\"", "") \
    X(acquire_noquorum, "acquire", "result=\"noquorum\"", "") \
    X(acquire_error, "acquire", "result=\"error\"", "") \
    X(extend_ok, "extend", "result=\"ok\"", "Extensions (EXTEND and AUTOEXTEND), by result.") \
    X(extend_fail, "extend", "result=\"fail\"", "") \
    X(release_ok, "release", "result=\"ok\"", "RELEASEs, by result.") \
    X(release_notheld, "release", "result=\"notheld\"", "") \
    X(lost, "", "", "") \
    X(lost_noquorum, "lost", "reason=\"noquorum\"", "Locks lost (EVENT LOST pushed), by reason.") \
    X(lost_taken, "lost", "reason=\"taken\"", "") \
    X(lost_preempted, "lost", "reason=\"preempted\"", "") \
    X(lost_maxhold, "lost", "reason=\"maxhold\"", "") \
    X(lost_shutdown, "lost", "reason=\"shutdown\"", "") \
    X(auto_released, "auto_released", "", "Locks released because their connection closed.") \
    X(locks_delayed, "locks_delayed", "", \
      "Locks kept on the masters for lock_delay_ms after their connection ended without RELEASE or QUIT.") \
    X(overload_pauses, "overload_pauses", "", \
      "Times a client was not read for 1 ms because a majority of masters was behind.") \
    X(expired, "expired", "", "Locks whose validity ran out unreleased.") \
    X(handoffs, "handoffs", "", "Releases that woke a local waiter.") \
    X(handoffs_cas, "handoffs_cas", "", "Hand-offs whose keys went straight to the waiter (one round trip).") \
    X(handoffs_yielded, "handoffs_yielded", "", \
      "Hand-offs that freed the key for another daemon's longer waiters instead (fleet waiting).") \
    X(fleet_wakeups, "fleet_wakeups", "", \
      "Wake-ups published by another daemon's release that started a waiter's attempt at once.") \
    X(errors_badreq, "errors", "code=\"BADREQ\"", "Requests refused with ERR, by code.") \
    X(errors_toolong, "errors", "code=\"TOOLONG\"", "") \
    X(errors_limit, "errors", "code=\"LIMIT\"", "") \
    X(auth_failures, "auth_failures", "", "Failed AUTH attempts.") \
    X(closed_stalled, "closed", "reason=\"stalled\"", "Client connections closed by the daemon, by reason.") \
    X(closed_output_full, "closed", "reason=\"output_full\"", "") \
    X(closed_auth_timeout, "closed", "reason=\"auth_timeout\"", "") \
    X(metrics_refused, "metrics_refused", "", "HTTP connections refused at [metrics] max_connections.")

struct stats {
#define STATS_FIELD(field, metric, labels, help) uint64_t field;
    STATS_COUNTERS(STATS_FIELD)
#undef STATS_FIELD
};

/* The list as data, for INFO and /metrics to walk. */
struct stats_desc {
    const char *key;    /* the field's name: INFO key */
    const char *metric; /* "" for INFO only */
    const char *labels;
    const char *help;
    size_t offset; /* of the field in struct stats */
};
extern const struct stats_desc stats_descs[];
extern const size_t stats_ndescs;

static inline uint64_t stats_value(const struct stats *st, const struct stats_desc *d)
{
    return *(const uint64_t *)(const void *)((const char *)st + d->offset);
}

/* Count an EVENT LOST by its reason (the protocol's word, e.g. "NOQUORUM"). */
void stats_count_lost(struct stats *st, const char *reason);

#endif
