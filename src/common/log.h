/* log.h — leveled, structured (key=value) logging to stderr.
 *
 * Contract: log_init() once before threads start; the LOG_* macros are
 * thread-safe (one write(2) per line) and cheap when the level is filtered.
 * Lines look like:  ts=2026-11-25T21:00:00.123Z level=info comp=fuse msg="..."
 */
#ifndef VALORFS_COMMON_LOG_H
#define VALORFS_COMMON_LOG_H

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

extern enum log_level log_current_level;

void log_init(enum log_level level);
/* Parses "error|warn|info|debug"; returns -1 if unknown. */
int log_level_parse(const char *s);
const char *log_level_name(enum log_level level);
void log_emit(enum log_level level, const char *comp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_AT(lvl, comp, ...) \
    do { if ((lvl) <= log_current_level) log_emit((lvl), (comp), __VA_ARGS__); } while (0)
#define LOG_ERROR(comp, ...) LOG_AT(LOG_LVL_ERROR, comp, __VA_ARGS__)
#define LOG_WARN(comp, ...)  LOG_AT(LOG_LVL_WARN, comp, __VA_ARGS__)
#define LOG_INFO(comp, ...)  LOG_AT(LOG_LVL_INFO, comp, __VA_ARGS__)
#define LOG_DEBUG(comp, ...) LOG_AT(LOG_LVL_DEBUG, comp, __VA_ARGS__)

#endif
