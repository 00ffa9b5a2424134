/* config.c — INI loading with FILE:LINE errors (see config.h). */
#include "common/config.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <string.h>

struct config_ctx {
    const char *prog, *file;
    FILE *f;
    int line;
    int failed;
    config_apply_fn apply;
    void *arg;
};

/* inih reports the line of a syntax error but not of a bad key: count
 * lines as they are read so the callback knows where it is. */
static char *read_line(char *str, int num, void *stream)
{
    struct config_ctx *c = stream;
    char *r = fgets(str, num, c->f);
    if (r)
        c->line++;
    return r;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct config_ctx *c = user;
    if (c->failed)
        return 1;
    int rc = c->apply(c->arg, section, name, value);
    if (rc == -2)
        fprintf(stderr, "%s: %s:%d: unknown key '%s%s%s'\n", c->prog, c->file, c->line, section,
                section[0] ? "." : "", name);
    else if (rc < 0)
        fprintf(stderr, "%s: %s:%d: bad value '%s' for %s%s%s\n", c->prog, c->file, c->line,
                value, section, section[0] ? "." : "", name);
    if (rc < 0)
        c->failed = 1;
    return 1; /* keep inih going: the first error is the one reported */
}

int config_load(const char *prog, const char *file, config_apply_fn apply, void *arg)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "%s: cannot read config %s: %s\n", prog, file, strerror(errno));
        return -1;
    }
    struct config_ctx c = { prog, file, f, 0, 0, apply, arg };
    int rc = ini_parse_stream(read_line, &c, on_key, &c);
    fclose(f);
    if (rc > 0 && !c.failed)
        fprintf(stderr, "%s: %s:%d: syntax error\n", prog, file, rc);
    return (rc != 0 || c.failed) ? -1 : 0;
}
