/* cli_output.c — aligned text tables and JSON string escaping. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"

void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void add_row(struct cli_table *t, va_list ap)
{
    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = realloc(t->cells, (size_t)t->cap * sizeof(*t->cells));
        if (!t->cells)
            abort();
    }
    for (int i = 0; i < t->ncols; i++) {
        const char *s = va_arg(ap, const char *);
        t->cells[t->nrows][i] = strdup(s ? s : "");
    }
    t->nrows++;
}

void cli_table_init(struct cli_table *t, int ncols, ...)
{
    memset(t, 0, sizeof(*t));
    t->ncols = ncols > 12 ? 12 : ncols;
    va_list ap;
    va_start(ap, ncols);
    add_row(t, ap);
    va_end(ap);
}

void cli_table_row(struct cli_table *t, ...)
{
    va_list ap;
    va_start(ap, t);
    add_row(t, ap);
    va_end(ap);
}

void cli_table_print(struct cli_table *t, FILE *f)
{
    size_t w[12] = {0};
    for (int r = 0; r < t->nrows; r++)
        for (int c = 0; c < t->ncols; c++) {
            size_t n = strlen(t->cells[r][c]);
            if (n > w[c])
                w[c] = n;
        }
    for (int r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++)
            fprintf(f, c + 1 < t->ncols ? "%-*s  " : "%-*s", c + 1 < t->ncols ? (int)w[c] : 0,
                    t->cells[r][c]);
        fputc('\n', f);
    }
}

void cli_table_free(struct cli_table *t)
{
    for (int r = 0; r < t->nrows; r++)
        for (int c = 0; c < t->ncols; c++)
            free(t->cells[r][c]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}
