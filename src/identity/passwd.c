#include "identity/passwd.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <uv.h>

#include "core/config.h"
#include "core/log.h"
#include "core/mem.h"
#include "identity/identity.h"
#include "store/store.h"

/* Reads the new password for "passwd": CONFERENCED_NEW_PASSWORD, else one line of standard
 * input (not echoed when it is a terminal). Returns 0 or -1 with a message printed. */
static int read_new_password(const char *username, char *out, size_t cap)
{
    const char *env = getenv("CONFERENCED_NEW_PASSWORD");
    if (env) {
        if (str_copy(out, cap, env) < 0) {
            fprintf(stderr, "conferenced: CONFERENCED_NEW_PASSWORD is too long\n");
            return -1;
        }
        return 0;
    }
    bool tty = isatty(STDIN_FILENO);
    struct termios saved;
    if (tty) {
        fprintf(stderr, "new password for '%s': ", username);
        if (tcgetattr(STDIN_FILENO, &saved) == 0) {
            struct termios quiet = saved;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        } else {
            tty = false;
        }
    }
    char *line = fgets(out, (int)cap, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
        fputc('\n', stderr);
    }
    if (!line) {
        fprintf(stderr, "conferenced: no password given (set CONFERENCED_NEW_PASSWORD or write "
                        "it on standard input)\n");
        return -1;
    }
    size_t n = strlen(out);
    if (n && out[n - 1] != '\n' && !feof(stdin)) {
        fprintf(stderr, "conferenced: the password is too long\n");
        return -1;
    }
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = '\0';
    return 0;
}

/* conferenced passwd USERNAME [options]: sets an agent's password in the store while no server
 * runs on it, and ends that agent's sessions. The options are the server's (--data, --config). */
int passwd_command(int argc, char **argv)
{
    if (argc < 3 || argv[2][0] == '-' || !argv[2][0]) {
        fprintf(stderr, "usage: conferenced passwd USERNAME [--data DIR | --config FILE]\n"
                        "  reads the new password from CONFERENCED_NEW_PASSWORD or one line of "
                        "standard input\n");
        return 2;
    }
    const char *username = argv[2];
    char **rest = xcalloc((size_t)argc, sizeof(*rest));
    rest[0] = argv[0];
    for (int i = 3; i < argc; i++)
        rest[i - 2] = argv[i];
    struct config cfg;
    char err[512];
    int rc = config_load(&cfg, argc - 2, rest, err, sizeof(err));
    free(rest);
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "conferenced: %s\n", err);
        return rc < 0 ? 2 : 0;
    }
    log_set_level(cfg.log_level > LOG_LEVEL_WARN ? cfg.log_level : LOG_LEVEL_WARN);
    char db[600];
    snprintf(db, sizeof(db), "%s/conferenced.db", cfg.data_dir);
    if (access(db, F_OK) != 0) { /* opening would create an empty store */
        fprintf(stderr, "conferenced: there is no store in %s (give the server's --data DIR)\n",
                cfg.data_dir);
        return 1;
    }
    char password[PASSWORD_MAX_LEN + 3];
    if (read_new_password(username, password, sizeof(password)) < 0)
        return 1;
    struct store *store = NULL;
    rc = store_sqlite_open(cfg.data_dir, &store);
    if (rc == STORE_BUSY) {
        fprintf(stderr,
                "conferenced: the store in %s is in use: a running conferenced locks it "
                "exclusively; stop the server, then run passwd again\n",
                cfg.data_dir);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "conferenced: cannot open the store in %s\n", cfg.data_dir);
        return 1;
    }
    uv_loop_t *loop = uv_default_loop();
    struct identity_options iopt = {.login_workers = 1, .login_queue = 1};
    struct identity *id = identity_create(loop, store, NULL, &iopt);
    struct error e;
    rc = identity_password_set(id, username, password, &e);
    explicit_bzero(password, sizeof(password));
    identity_destroy(id);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    store_close(store);
    if (rc < 0) {
        fprintf(stderr, "conferenced: %s\n", e.message);
        return 1;
    }
    printf("password of '%s' changed; its earlier sessions (JWTs) no longer work\n", username);
    return 0;
}
