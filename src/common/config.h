/* config.h — the one INI config loader every valorfs program uses.
 *
 * config_load() reads FILE with inih and hands each key to apply(arg,
 * section, key, value), which returns 0 (taken), -1 (bad value) or -2
 * (unknown key). The first problem is printed as one line,
 * "PROG: FILE:LINE: unknown key 'sec.key'" / "bad value 'v' for key" /
 * "syntax error", and config_load() returns -1; 0 when every key was taken.
 */
#ifndef VALORFS_COMMON_CONFIG_H
#define VALORFS_COMMON_CONFIG_H

typedef int (*config_apply_fn)(void *arg, const char *section, const char *key,
                               const char *value);

int config_load(const char *prog, const char *file, config_apply_fn apply, void *arg);

#endif
